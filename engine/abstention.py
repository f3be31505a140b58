"""When to say "no confident answer": the answer confidence and the threshold below which the answer is withheld.

The answer confidence is the probability that the top passage answers the question, as distinct from each
passage's relevance probability (calibrated over every candidate, most of them wrong). It is a logistic model
``sigmoid(intercept + weights . features)`` of the top passage's features (`engine.answer_features`), fitted by
`earlyrank fit-abstention` on dev questions and on their unanswerable twins (the same questions with their
judged passages taken out of the corpus), with the threshold chosen there for a target precision. Stored with
the model as ``answer_gate.json``.

Two kinds of gate: the first one, Platt scaling (Platt 1999) of the top logit alone (``{"calibration",
"threshold"}``, still read), and the multi-feature gate over every feature of `ANSWER_FEATURES`, which reads the
index's signals and holds for the recall mode it was fitted on only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.answer_features import ANSWER_FEATURES
from earlyrank.engine.calibration import Calibration, sigmoid
from earlyrank.engine.model_files import ANSWER_GATE

NO_CONFIDENT_ANSWER = "no_confident_answer"
TOP_LOGIT_ONLY = ("top_logit",)


@dataclass(frozen=True)
class AnswerGate:
    """``answer_confidence = sigmoid(intercept + weights . features)``; answers below `threshold` are withheld.

    `features` is `TOP_LOGIT_ONLY` or `ANSWER_FEATURES`; `recall_mode` is the recall the features were fitted
    under (None for the top logit alone, which reads no recall signal); `report` is what the fit measured.
    `split_threshold`, if set, replaces `threshold` on an index that splits documents into passages (fitted on
    such indexes by `earlyrank fit-abstention --split-too`); None: one threshold for every index.
    """

    weights: tuple[float, ...]
    intercept: float
    threshold: float
    features: tuple[str, ...] = TOP_LOGIT_ONLY
    recall_mode: str | None = None
    report: dict | None = None
    split_threshold: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("threshold", self.threshold), ("split_threshold", self.split_threshold)):
            if (value is not None or name == "threshold") and not (isinstance(value, (int, float))
                                                                  and 0.0 <= value <= 1.0):
                raise ValueError(f"the answer {name} is a probability in [0, 1], got {value}")
        if tuple(self.features) not in (TOP_LOGIT_ONLY, ANSWER_FEATURES):
            raise ValueError(f"an answer gate reads {list(TOP_LOGIT_ONLY)} or {list(ANSWER_FEATURES)}, "
                             f"not {list(self.features)}")
        if len(self.weights) != len(self.features):
            raise ValueError(f"{len(self.weights)} weights for {len(self.features)} features")
        if len(self.features) > 1 and self.recall_mode is None:
            raise ValueError("a gate over recall's signals needs the recall mode it was fitted under")

    @classmethod
    def platt(cls, calibration: Calibration, threshold: float) -> AnswerGate:
        """The one-feature gate: `calibration` (Platt scaling) of the top logit."""
        return cls((calibration.scale,), calibration.bias, threshold)

    @property
    def top_logit_only(self) -> bool:
        return tuple(self.features) == TOP_LOGIT_ONLY

    def reads(self, mode: str) -> bool:
        """Whether the gate can judge an answer recalled in `mode`: the top logit alone always; the other features
        under the recall mode they were fitted on (hybrid recall needs, as they do, both parts of an index)."""
        return self.top_logit_only or mode == self.recall_mode

    def threshold_for(self, split: bool) -> float:
        """The threshold for an index that splits documents (`split`) or keeps them whole."""
        return self.split_threshold if split and self.split_threshold is not None else self.threshold

    def withholds(self, answer_confidence: float, split: bool = False) -> bool:
        """Whether an answer of this confidence is withheld on an index that splits documents (`split`) or not:
        below the threshold for that index, or always at threshold 1.0 (`earlyrank fit-abstention`'s "answer
        nothing" when no threshold reaches the target precision)."""
        threshold = self.threshold_for(split)
        return answer_confidence < threshold or threshold >= 1.0

    def confidences(self, features: np.ndarray) -> np.ndarray:
        """The answer confidences, in [0, 1], of questions whose features are the rows of `features`, shape
        (questions, len(self.features)) or, for the top logit alone, (questions,)."""
        x = np.asarray(features, dtype=np.float64).reshape(-1, len(self.features))
        return sigmoid(self.intercept + x @ np.asarray(self.weights))

    def answer_confidence(self, features: np.ndarray | float) -> float:
        """The probability, in [0, 1], that the top passage with these features (for the top logit alone, that
        logit) answers the question."""
        return float(self.confidences(np.atleast_1d(features))[0])

    def as_dict(self) -> dict:
        """JSON-ready; the one-feature gate in its first format, which older versions read. A split threshold,
        where there is one, is kept under "split_threshold" in either form."""
        data: dict
        if self.top_logit_only:
            data = {"calibration": Calibration(self.weights[0], self.intercept, "platt").as_dict(),
                    "threshold": self.threshold}
        else:
            data = {"features": list(self.features), "weights": list(self.weights), "intercept": self.intercept,
                    "threshold": self.threshold, "recall_mode": self.recall_mode, "report": self.report or {}}
        if self.split_threshold is not None:
            data["split_threshold"] = self.split_threshold
        return data

    @classmethod
    def from_dict(cls, data: dict) -> AnswerGate:
        """A gate from `as_dict`'s form, or from the first format (``{"calibration", "threshold"}``)."""
        split = None if data.get("split_threshold") is None else float(data["split_threshold"])
        if "calibration" in data:
            c = data["calibration"]
            gate = cls.platt(Calibration(float(c["scale"]), float(c["bias"]), str(c.get("method", "platt"))),
                             float(data["threshold"]))
            return dataclasses.replace(gate, split_threshold=split)
        return cls(tuple(float(w) for w in data["weights"]), float(data["intercept"]), float(data["threshold"]),
                   tuple(data["features"]), str(data["recall_mode"]), data.get("report"), split)

    @classmethod
    def read(cls, path: Path) -> AnswerGate:
        """The gate in the file `path`; ValueError naming the file if it is not one."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not an answer gate written by `earlyrank fit-abstention` ({e!r}); "
                             f"fit it again") from None

    @classmethod
    def load(cls, model_dir: Path) -> AnswerGate | None:
        """The gate stored with the model, or None if it has none; ValueError naming the file if it is broken."""
        path = Path(model_dir) / ANSWER_GATE
        return cls.read(path) if path.is_file() else None
