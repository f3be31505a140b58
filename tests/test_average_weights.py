"""scripts/average_weights.py: the WiSE-FT average of two models' tensors, and its errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_program


def _state(torch, value: float, dtype=None):
    dtype = dtype or torch.float16
    return {"w": torch.full((2, 3), value, dtype=dtype), "b": torch.tensor([value, -value], dtype=dtype)}


def test_average_is_the_weighted_mean_in_the_first_models_dtype():
    import torch

    average = load_program("scripts/average_weights.py")
    out = average.average_state(_state(torch, 1.0), _state(torch, 3.0), 0.25)
    assert out["w"].dtype == torch.float16
    assert torch.equal(out["w"], torch.full((2, 3), 1.5, dtype=torch.float16))  # 0.75 * 1 + 0.25 * 3
    assert out["b"].tolist() == [1.5, -1.5]
    ends = average.average_state(_state(torch, 1.0), _state(torch, 3.0), 1.0)
    assert ends["w"][0, 0].item() == 3.0


def test_mismatched_models_and_bad_alpha_are_errors():
    import torch

    average = load_program("scripts/average_weights.py")
    other = _state(torch, 1.0)
    other["extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match="different tensors"):
        average.average_state(_state(torch, 1.0), other, 0.5)
    wide = {"w": torch.zeros(2, 4), "b": torch.zeros(2)}
    with pytest.raises(ValueError, match="'w' has shape"):
        average.average_state(_state(torch, 1.0), wide, 0.5)
    ids_a, ids_b = {"ids": torch.arange(3)}, {"ids": torch.arange(3) + 1}
    assert torch.equal(average.average_state(ids_a, dict(ids_a), 0.5)["ids"], torch.arange(3))
    with pytest.raises(ValueError, match="non-float tensor 'ids' differs"):
        average.average_state(ids_a, ids_b, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        average.average_state(_state(torch, 1.0), _state(torch, 1.0), 1.5)


def test_the_program_writes_the_average_and_copies_only_the_config(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    average = load_program("scripts/average_weights.py")
    for name, value in (("a", 2.0), ("b", 4.0)):
        folder = tmp_path / name
        folder.mkdir()
        save_file(_state(torch, value), folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"from": name}))
        (folder / "calibration.json").write_text("{}")
    out = tmp_path / "out"
    assert average.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert load_file(out / "model.safetensors")["w"][1, 2].item() == 3.0
    assert json.loads((out / "config.json").read_text()) == {"from": "a"}
    assert not (out / "calibration.json").exists()  # it belongs to A's scores: refitted, never copied
    assert json.loads((out / "average_card.json").read_text())["alpha"] == 0.5
    assert average.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert average.main([str(tmp_path / "a"), str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing/model.safetensors does not exist" in capsys.readouterr().err
