from __future__ import annotations

import numpy as np
import pytest

from earlyrank.engine.calibration import (
    Calibration,
    brier_score,
    expected_calibration_error,
    fit_platt,
    reliability_table,
    sigmoid,
)


def test_platt_recovers_known_parameters():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 20000)
    labels = (rng.random(20000) < sigmoid(0.5 * logits - 1.0)).astype(float)
    fitted = fit_platt(logits, labels)
    assert fitted.scale == pytest.approx(0.5, abs=0.05) and fitted.bias == pytest.approx(-1.0, abs=0.1)
    temperature = fit_platt(logits, labels, temperature_only=True)
    assert temperature.bias == 0.0 and temperature.method == "temperature"


def test_calibration_improves_ece_and_brier():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, 5000)
    labels = (rng.random(5000) < sigmoid(0.4 * logits - 0.5)).astype(float)
    raw, fitted = Calibration(), fit_platt(logits, labels)
    assert expected_calibration_error(fitted.confidence(logits), labels) < 0.03
    assert expected_calibration_error(fitted.confidence(logits), labels) < \
        expected_calibration_error(raw.confidence(logits), labels)
    assert brier_score(fitted.confidence(logits), labels) < brier_score(raw.confidence(logits), labels)


def test_ece_and_brier_by_hand():
    conf = np.array([0.1, 0.1, 0.9, 0.9])
    labels = np.array([0, 1, 1, 1])
    # Two occupied bins of weight 1/2: |0.5 - 0.1| and |1.0 - 0.9| -> 0.5 * 0.4 + 0.5 * 0.1 = 0.25
    assert expected_calibration_error(conf, labels, bins=10) == pytest.approx(0.25)
    assert brier_score(conf, labels) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    rows = reliability_table(conf, labels, bins=10)
    assert rows[1]["count"] == 2 and rows[1]["accuracy"] == 0.5 and rows[5]["count"] == 0


def test_sigmoid_is_stable_and_save_load(tmp_path):
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]
    Calibration(2.0, -1.0, "platt").save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == Calibration(2.0, -1.0, "platt")
    assert Calibration.load(tmp_path / "absent.json") == Calibration()
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        fit_platt(np.array([0.0]), np.array([2.0]))
