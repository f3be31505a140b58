"""`earlyrank adapt`: fit the cross-encoder to a user's own corpus without a single label.

Training pairs come from the corpus itself (a built index: its passages, BM25 and dense parts):
- label-free groups scored by the bi-encoder teacher (`distillation.distill_groups`): the student learns how the
  bi-encoder, trained on a billion pairs of many kinds, ranks this corpus's passages;
- inverse-cloze groups (`training_data.sentence_groups`, Lee et al., 2019): a sentence is the question for the
  rest of its passage, a pseudo-label.
A held-out set of inverse-cloze groups, never trained on, then refits the calibration (Platt scaling on the
pseudo-labels), so confidences follow the adapted model's logits. The pseudo-questions are not the user's
questions; the refit is reported beside the model (`adaptation.json`), and the base model's calibration is kept
when `recalibrate` is off.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.model_files import CALIBRATION, INFERENCE, OPERATING_POINT

ADAPTATION = "adaptation.json"  # what adapt trained on and what its calibration refit measured


@dataclass(frozen=True)
class AdaptParams:
    """How much to adapt: `distill` teacher-scored groups and `sentence` inverse-cloze groups to train on,
    `held_out` inverse-cloze groups for the calibration refit, passages per group (`negatives` + 1), candidates
    drawn from the hybrid top `depth`, the schedule (`epochs`, `lr` of the encoder body, `max_minutes`, 0 = no
    limit) and the teacher's weight. ValueError naming the setting when a count is negative or nothing is asked."""

    distill: int = 1200
    sentence: int = 400
    held_out: int = 200
    negatives: int = 7
    depth: int = 30
    epochs: float = 1.0
    lr: float = 2e-5
    distill_weight: float = 1.0
    max_length: int = 192
    max_minutes: float = 0.0
    recalibrate: bool = True
    seed: int = 13

    def __post_init__(self) -> None:
        for name in ("distill", "sentence", "held_out"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.distill + self.sentence == 0:
            raise ValueError("nothing to train on: give distill or sentence groups (> 0)")
        if self.recalibrate and self.held_out < 10:
            raise ValueError(f"recalibrating needs at least 10 held-out groups, got held_out={self.held_out}")


MIN_HELD_OUT = 10  # groups: the fewest a calibration refit takes
HELD_OUT_SHARE = 0.2  # of the corpus's passages: the most the refit may keep out of training


def held_out_size(asked: int, passages: int) -> int:
    """How many held-out groups to draw for the calibration refit: `asked`, but at most a fifth of the corpus's
    `passages` (never fewer than `MIN_HELD_OUT`). Each held-out group keeps its passage out of training, so 200
    groups over a 54-passage corpus once left 5 passages to train on, and adapt failed with no groups.

    >>> held_out_size(200, 5000), held_out_size(200, 54), held_out_size(200, 20)
    (200, 10, 10)
    """
    return min(asked, max(MIN_HELD_OUT, int(passages * HELD_OUT_SHARE)))


def adapt(index_path: Path, base_model: Path, out: Path, params: AdaptParams, progress: bool = True) -> dict:
    """Adapt `base_model` (a trained cross-encoder directory) to the corpus of the index at `index_path`; write the
    adapted model, with its inference settings, operating point and (re)fitted calibration, to `out`.

    Resumable like `earlyrank train`: rerun with the same arguments and training continues from the checkpoint
    beside `out`. Returns the adaptation record also written to `out/adaptation.json`. IndexStoreError if the
    index cannot be loaded or lacks a BM25 or dense part (both are needed); ValueError if the corpus yields no
    training groups.
    """
    from earlyrank.engine.distillation import distill_groups
    from earlyrank.engine.training import TrainParams, train
    from earlyrank.engine.training_data import DevCandidates, sentence_groups
    from earlyrank.indexes.store import load_index

    index = load_index(index_path)
    index.retriever("hybrid")  # fail now, naming the missing part, not after minutes of group building
    rng = random.Random(params.seed)
    held_out = held_out_size(params.held_out, len(index.docs))
    held = sentence_groups(index, held_out, negatives=params.negatives, depth=params.depth,
                           rng=rng) if params.recalibrate else []
    held_docs = frozenset(d.id for d in index.docs for g in held if g.query in d.text)
    groups = distill_groups(index, params.distill, size=params.negatives + 1, depth=params.depth, rng=rng,
                            exclude=held_docs)
    groups += sentence_groups(index, params.sentence, negatives=params.negatives, depth=params.depth, rng=rng,
                              exclude=held_docs)
    if not groups:
        kept = f"; {len(held_docs)} of its {len(index.docs)} passages are held out for the calibration refit " \
               f"(--no-recalibrate trains on all)" if held_docs else ""
        raise ValueError(f"{index_path}: no training groups could be made (passages need sentences of 6-40 words "
                         f"and at least {params.negatives + 1} other passages recall finds for them{kept})")
    rng.shuffle(groups)
    train_params = TrainParams(max_length=params.max_length, negatives=params.negatives, epochs=params.epochs,
                               lr_body=params.lr, lr_head=params.lr * 25, distill_weight=params.distill_weight,
                               selection="last", max_minutes=params.max_minutes, eval_every=50,
                               dev_queries=0, seed=params.seed, base_model=str(base_model))
    card = train(groups, DevCandidates(), out, train_params, progress)
    for name in (INFERENCE, OPERATING_POINT, CALIBRATION):
        if (base_model / name).is_file():
            shutil.copyfile(base_model / name, out / name)
    record = {"index": str(index_path), "base_model": str(base_model), "params": asdict(params),
              "groups": card["groups_by_source"], "steps": card["steps"], "minutes": card["minutes"]}
    if params.recalibrate and held:
        record["calibration"] = _recalibrate(out, held)
    elif params.recalibrate:  # asked for, but the corpus gave no held-out group: say so, do not pass it over
        record["calibration_skipped"] = ("no held-out groups could be made (they need passages with sentences of "
                                         "6-40 words); the base model's calibration was kept")
    (out / ADAPTATION).write_text(json.dumps(record, indent=2))
    return record


def _recalibrate(model_dir: Path, held: list) -> dict:
    """Platt scaling on the held-out inverse-cloze groups (positive = 1, the rest 0), written over the copied
    calibration; returns the pseudo-labelled ECE before and after."""
    from earlyrank.engine.calibration import Calibration, expected_calibration_error, fit_platt
    from earlyrank.engine.cross_encoder import CrossEncoder

    scorer = CrossEncoder.load(model_dir)
    logits = np.concatenate([scorer.logits([g.query] * (1 + len(g.negatives)), [g.positive, *g.negatives])
                             for g in held])
    labels = np.concatenate([[1.0] + [0.0] * len(g.negatives) for g in held])
    before = Calibration.load(model_dir / CALIBRATION) if (model_dir / CALIBRATION).is_file() else Calibration()
    fitted = fit_platt(logits, labels)
    fitted.save(model_dir / CALIBRATION)
    return {"pairs": int(labels.size), "groups": len(held), "fitted": fitted.as_dict(),
            "pseudo_ece_before": expected_calibration_error(before.confidence(logits), labels),
            "pseudo_ece_after": expected_calibration_error(fitted.confidence(logits), labels)}
