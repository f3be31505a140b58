"""Does a cross-encoder fine-tuned on answer sentences choose them better than the weighted word count?

    python benchmarks/answer_sentence_reader.py [--limit 0] [--work /tmp/answer-sentence-reader]

The fifth round of docs/experiments/answer-sentence.md. The selection set is the 600 XQuAD train questions with
their judged passage (`answer_sentence_choice.selection_set`). Its 120 passages are split into 5 folds (seed 0);
for each fold a copy of the shipped cross-encoder is fine-tuned (`engine.training.train`, the settings of
`READER_PARAMS`, fixed before any figure) on the other folds' questions, and then chooses the sentence of each of
the fold's questions: R, the reader alone; R+W, the reciprocal-rank fusion of the reader and the weighted word
count. Prints the cross-validated shares of questions whose chosen sentence holds a gold answer, against the
weighted word count's (with the 90% paired-bootstrap interval of the gap, for the record; the rule reads the
shares), and writes results/answer_sentence_reader-train.json with the commit, machine and command. Each fold's
model is kept under --work, so a rerun after a crash resumes at the first fold not finished.

The reader is not shipped: it missed the rule's margin (docs/experiments/answer-sentence.md, fifth round).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from earlyrank.engine.answer_sentence import fused_ranks, weighted_overlap
from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.model_files import DEFAULT_MODEL
from earlyrank.engine.training import TrainParams, train
from earlyrank.engine.training_data import DevCandidates, Group

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the selection set is answer_sentence_choice.py's
from answer_sentence_choice import first_best, selection_set  # noqa: E402

FOLDS = 5

READER_NEGATIVES = 4
READER_SEED = 13
READER_PARAMS = {"max_length": 128, "negatives": READER_NEGATIVES, "random_negatives": 0, "loss": "listwise",
                 "epochs": 2.0, "groups_per_batch": 4, "accumulation": 2, "lr_body": 3e-5, "lr_head": 3e-5,
                 "warmup": 0.1, "selection": "last", "seed": READER_SEED, "eval_every": 100}


@dataclass(frozen=True)
class ReaderQuestion:
    """A question, its passage's sentences (in order) and, per sentence, whether it holds a gold answer."""

    text: str
    sentences: Sequence[str]
    holds: Sequence[bool]


def reader_groups(questions: Sequence[ReaderQuestion], negatives: int = READER_NEGATIVES,
                  seed: int = READER_SEED) -> list[Group]:
    """One group per question with a sentence holding an answer (the others are left out): that sentence first,
    then `negatives` sentences holding none: the passage's own, drawn at random, then sentences of other
    questions' passages. ValueError if `holds` and `sentences` differ in length."""
    rng = random.Random(seed)
    pool = list(dict.fromkeys(s for q in questions for s in q.sentences))
    groups = []
    for q in questions:
        if len(q.holds) != len(q.sentences):
            raise ValueError(f"question {q.text!r}: {len(q.holds)} holds for {len(q.sentences)} sentences")
        answering = [s for s, h in zip(q.sentences, q.holds, strict=True) if h]
        if not answering:
            continue
        own = [s for s, h in zip(q.sentences, q.holds, strict=True) if not h]
        drawn = rng.sample(own, min(negatives, len(own)))
        if len(drawn) < negatives:  # padded from other passages' sentences; a question short of them is left out
            others = [s for s in pool if s not in q.sentences]
            drawn += rng.sample(others, min(negatives - len(drawn), len(others)))
        if len(drawn) == negatives:
            groups.append(Group(q.text, answering[0], tuple(drawn), "sentence-reader"))
    return groups


def train_reader(questions: Sequence[ReaderQuestion], out: Path, base_model: Path | None = None,
                 progress: bool = True) -> dict:
    """Fine-tune `base_model` (default: the shipped cross-encoder) on `reader_groups(questions)` and write the
    reader to `out` (fp16, with its training card, and the base model's inference.json and calibration.json so it
    loads as a `CrossEncoder`); returns the card. Resumable as `engine.training.train` is. ValueError if no
    question has a sentence holding an answer."""
    base = Path(base_model) if base_model else DEFAULT_MODEL
    groups = reader_groups(questions)
    if not groups:
        raise ValueError("no question has a sentence holding a gold answer: nothing to train the reader on")
    card = train(groups, DevCandidates(), out, TrainParams(**READER_PARAMS, base_model=str(base)), progress)
    for name in ("inference.json", "calibration.json"):
        if (base / name).is_file():
            shutil.copy(base / name, out / name)
    return card


def passage_folds(passages: list[str], folds: int = FOLDS, seed: int = 0) -> dict[str, int]:
    """Each distinct passage's fold, drawn at random (in order of first appearance) with `seed`."""
    distinct = list(dict.fromkeys(passages))
    drawn = np.random.default_rng(seed).integers(0, folds, len(distinct))
    return {p: int(k) for p, k in zip(distinct, drawn, strict=True)}


def gap_interval(differences: np.ndarray, resamples: int = 2000, seed: int = 0) -> list[float]:
    """The 90% paired-bootstrap interval of the mean of per-question `differences` (resampling questions)."""
    rng = np.random.default_rng(seed)
    means = [float(differences[rng.integers(0, len(differences), len(differences))].mean())
             for _ in range(resamples)]
    return [float(np.percentile(means, 5)), float(np.percentile(means, 95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/answer-sentence-reader"),
                        help="where each fold's model is written")
    parser.add_argument("--out", type=Path, default=Path("results/answer_sentence_reader-train.json"))
    args = parser.parse_args()
    started = time.time()
    bm25, questions = selection_set("train", args.limit)
    fold_of = passage_folds([q.passage for q in questions])
    hits: dict[str, list[int]] = {"weighted words (shipped)": [], "R: reader": [], "R+W: reader + weighted words": []}
    minutes = []
    for k in range(FOLDS):
        train = [ReaderQuestion(q.text, q.sentences, q.holds()) for q in questions if fold_of[q.passage] != k]
        chosen_from = [q for q in questions if fold_of[q.passage] == k]
        out = args.work / f"fold-{k}"
        t0 = time.time()
        if not (out / "training_card.json").is_file():
            train_reader(train, out, progress=True)
        minutes.append((time.time() - t0) / 60)
        reader = CrossEncoder.load(out)
        for q in tqdm(chosen_from, desc=f"fold {k}: choose", unit="question"):
            holds = q.holds()
            weighted = [weighted_overlap(bm25.term_idf(q.text), bm25.tokenize(t)) for t in q.sentences]
            logits = [float(x) for x in reader.score(q.text, q.sentences).logits]
            hits["weighted words (shipped)"].append(holds[first_best(weighted)])
            hits["R: reader"].append(holds[first_best(logits)])
            hits["R+W: reader + weighted words"].append(holds[first_best(fused_ranks(logits, weighted))])
    shares = {name: float(np.mean(h)) if h else 0.0 for name, h in hits.items()}
    base = np.asarray(hits["weighted words (shipped)"], dtype=float)
    gaps = {name: gap_interval(np.asarray(h, dtype=float) - base) for name, h in hits.items() if h is not hits[
        "weighted words (shipped)"]}
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
              "questions": len(questions), "passages": len(fold_of), "folds": FOLDS, "fold_by": "passage",
              "params": READER_PARAMS, "training_minutes": minutes, "minutes": (time.time() - started) / 60,
              "sentence_holds_answer": shares, "gap_over_weighted_words_90": gaps}
    print(f"XQuAD train: {len(questions)} questions over {len(fold_of)} passages, {FOLDS} folds by passage")
    print("| answer sentence chosen by | holds a gold answer | gap over weighted words (90% interval) |")
    print("|---|---|---|")
    for name, share in shares.items():
        gap = gaps.get(name)
        print(f"| {name} | {share:.1%} | " + (f"[{gap[0]:+.1%}, {gap[1]:+.1%}] |" if gap else "|"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
