"""When to say "no confident answer": the answer confidence and the threshold below which the answer is withheld.

The answer confidence is the probability that the top passage answers the question, as distinct from each
passage's relevance probability (calibrated over every candidate, most of them wrong). It is Platt scaling
(Platt 1999) of the top passage's cross-encoder logit, fitted by `earlyrank fit-abstention` on dev questions and
on their unanswerable twins (the same questions with their judged passages taken out of the corpus), with the
threshold chosen there for a target precision. Stored with the model as ``answer_gate.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.calibration import Calibration
from earlyrank.engine.model_files import ANSWER_GATE

NO_CONFIDENT_ANSWER = "no_confident_answer"


@dataclass(frozen=True)
class AnswerGate:
    """``answer_confidence = calibration.confidence(top logit)``; answers below `threshold` are withheld."""

    calibration: Calibration
    threshold: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"the answer threshold is a probability in [0, 1], got {self.threshold}")

    def withholds(self, answer_confidence: float) -> bool:
        """Whether an answer of this confidence is withheld: below the threshold, or always at threshold 1.0
        (`earlyrank fit-abstention`'s "answer nothing" when no threshold reaches the target precision)."""
        return answer_confidence < self.threshold or self.threshold >= 1.0

    def answer_confidence(self, top_logit: float) -> float:
        """The probability, in [0, 1], that the passage whose logit is `top_logit` answers the question."""
        return float(self.calibration.confidence(np.asarray([top_logit]))[0])

    def as_dict(self) -> dict:
        """JSON-ready: the calibration's fields and the threshold."""
        return {"calibration": self.calibration.as_dict(), "threshold": self.threshold}

    @classmethod
    def load(cls, model_dir: Path) -> AnswerGate | None:
        """The gate stored with the model, or None if it has none; ValueError naming the file if it is broken."""
        path = Path(model_dir) / ANSWER_GATE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            c = data["calibration"]
            return cls(Calibration(float(c["scale"]), float(c["bias"]), str(c.get("method", "platt"))),
                       float(data["threshold"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not an answer gate written by `earlyrank fit-abstention` ({e!r}); "
                             f"fit it again") from None
