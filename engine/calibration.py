"""Calibration maths: logits to probabilities, and how good those probabilities are.

Pure numpy, no model. Platt scaling fits ``p = sigmoid(a * logit + b)`` by minimising log loss; temperature
scaling is the special case ``b = 0``. Quality is the expected calibration error (ECE, equal-width bins)
and the Brier score.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + e^-x)``, elementwise: log-odds to a probability in [0, 1], float64, same shape
    as `x`. Written with ``e^-|x|`` only, so no large ``|x|`` overflows."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


@dataclass(frozen=True)
class Calibration:
    """``confidence = sigmoid(scale * logit + bias)``; the identity (1, 0) means uncalibrated."""

    scale: float = 1.0
    bias: float = 0.0
    method: str = "none"

    def confidence(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities in [0, 1] for raw logits (log-odds), same shape, float64."""
        return sigmoid(self.scale * np.asarray(logits, dtype=np.float64) + self.bias)

    def as_dict(self) -> dict:
        """The fields as a JSON-ready dict: scale, bias, method."""
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write the calibration to `path` as JSON; `load` reads it back."""
        path.write_text(json.dumps(self.as_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """The calibration `save` wrote at `path`, or the identity (uncalibrated) when there is no such file."""
        if not path.is_file():
            return cls()
        return cls(**json.loads(path.read_text()))


def fit_platt(logits: np.ndarray, labels: np.ndarray, temperature_only: bool = False) -> Calibration:
    """Fit Platt scaling (Platt 1999), or temperature scaling (Guo et al., ICML 2017), by minimising the log loss
    with L-BFGS. ValueError if `labels` and `logits` differ in shape or are empty, or a label is not 0 or 1."""
    from scipy.optimize import minimize

    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"need as many labels as logits (got {x.size} and {y.size}), and at least one")
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("labels must be 0 or 1")

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params[0], (0.0 if temperature_only else params[1])
        z = a * x + b
        # log(1 + e^z) - y z, computed stably; its gradient is (sigmoid(z) - y) times dz/dparams.
        value = np.sum(np.logaddexp(0, z) - y * z) / x.size
        residual = (sigmoid(z) - y) / x.size
        grad = np.array([np.sum(residual * x), 0.0 if temperature_only else np.sum(residual)])
        return float(value), grad

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = float(result.x[0]), (0.0 if temperature_only else float(result.x[1]))
    return Calibration(scale=a, bias=b, method="temperature" if temperature_only else "platt")


def expected_calibration_error(confidences: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE (Naeini et al., AAAI 2015; Guo et al., ICML 2017) with `bins` equal-width bins: sum over bins of
    |accuracy - mean confidence| * bin weight. ValueError for no predictions."""
    p = np.asarray(confidences, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        raise ValueError("ECE of no predictions is undefined")
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(error)


def brier_score(confidences: np.ndarray, labels: np.ndarray) -> float:
    """The Brier score (Brier 1950): mean squared difference between `confidences` (probabilities in [0, 1]) and the 0/1
    `labels`, same shape; 0 is perfect, lower is better."""
    p = np.asarray(confidences, dtype=np.float64)
    return float(np.mean((p - np.asarray(labels, dtype=np.float64)) ** 2))


def reliability_table(confidences: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict]:
    """Per bin: its range, count, mean confidence and observed accuracy (for the reliability diagram)."""
    p = np.asarray(confidences, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "count": int(mask.sum()),
                     "confidence": float(p[mask].mean()) if mask.any() else None,
                     "accuracy": float(y[mask].mean()) if mask.any() else None})
    return rows
