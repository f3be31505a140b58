"""The files of a cross-encoder's model directory, by name, and the settings read from them.

A model directory holds the transformers model (config.json, weights, tokenizer) and earlyrank's own files:
the training card, the Platt calibration, the measured inference settings and the tuned operating point.
"""

from __future__ import annotations

import json
from pathlib import Path

CARD = "training_card.json"
CALIBRATION = "calibration.json"
CALIBRATION_REPORT = "calibration_report.json"
INFERENCE = "inference.json"  # settings measured for inference, e.g. {"max_length": 256} (benchmarks/lengths.py)
OPERATING_POINT = "operating_point.json"
ANSWER_GATE = "answer_gate.json"  # answer confidence and abstention threshold (earlyrank fit-abstention)
FUSION = "fusion.json"  # the learned combination of every signal (earlyrank fit-fusion)
DEFAULT_MODEL = Path(__file__).parent / "models" / "earlyrank-minilm-ce"


class ModelLoadError(RuntimeError):
    """A model directory is missing files or is not a cross-encoder."""


def model_max_length(path: Path) -> int:
    """Tokens per pair at inference: inference.json's choice, else the training length, else 256."""
    for name, keys in ((INFERENCE, ("max_length",)), (CARD, ("params", "max_length"))):
        if (path / name).is_file():
            value = json.loads((path / name).read_text())
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, int):
                return value
    return 256


def model_windows(path: Path) -> int:
    """Passage windows per pair at inference: inference.json's choice, else 1 (the head of the passage only)."""
    settings = json.loads((path / INFERENCE).read_text()) if (path / INFERENCE).is_file() else {}
    value = settings.get("windows") if isinstance(settings, dict) else None
    return value if isinstance(value, int) and value >= 1 else 1


def check_model_dir(path: Path) -> dict:
    """Raise `ModelLoadError` unless `path` holds a single-logit sequence-classification model."""
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such model directory; train one with `earlyrank train` "
                             f"or omit --model to use the bundled one")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{path}: no config.json; not a transformers model directory")
    config = json.loads(config_path.read_text())
    if not any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        raise ModelLoadError(f"{path}: architectures {config.get('architectures')} is not a cross-encoder "
                             f"(expected *ForSequenceClassification with one label)")
    if len(config.get("id2label") or {"0": ""}) != 1:
        raise ModelLoadError(f"{path}: the classifier has {len(config['id2label'])} labels; expected 1")
    if not any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise ModelLoadError(f"{path}: no weights file (model.safetensors)")
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
        raise ModelLoadError(f"{path}: no tokenizer files (tokenizer.json or vocab.txt)")
    return config
