"""Does a learned sentence ranker choose the answer sentence better than the weighted word count?

    python benchmarks/answer_sentence_ranker.py [--limit 0]

The fourth round of docs/experiments/answer-sentence.md: for every XQuAD train question (the selection set), the
judged passage is cut into sentences and each sentence gets eight features (weighted words, shared words, the
bi-encoder cosine and the cross-encoder logit, each relative to the passage's best; position; the answer type; the
share of new words; log length). A logistic regression (scikit-learn) of "holds a gold answer" picks each
question's sentence in 5-fold cross-validation over questions; candidate A reads all eight features, B all but the
cross-encoder logit. Prints the shares against the weighted word count's and writes
results/answer_sentence_ranker-train.json with the commit, machine and command.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from earlyrank.engine.answer_sentence import shared_words, weighted_overlap
from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.indexes.bm25 import BM25Index
from earlyrank.indexes.dense import DenseParams, encode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the selection set is answer_sentence_choice.py's
from answer_sentence_choice import selection_set  # noqa: E402

WORD = re.compile(r"\w+")
NUMERIC_QUESTION = re.compile(r"\b(how (many|much|long|old)|what year|when|what percentage)\b", re.IGNORECASE)
DIGIT = re.compile(r"\d")
FEATURES = ("weighted words", "shared words", "bi-encoder", "cross-encoder", "position", "answer type",
            "new words", "log length")
WITHOUT_CROSS_ENCODER = [i for i, f in enumerate(FEATURES) if f != "cross-encoder"]


def relative(values: list[float]) -> list[float]:
    best = max(values)
    return [v - best for v in values]


def sentence_features(question: str, texts: list[str], bm25: BM25Index, scorer) -> np.ndarray:
    """Shape (sentences, len(FEATURES))."""
    idf = bm25.term_idf(question)
    weighted = relative([weighted_overlap(idf, bm25.tokenize(t)) for t in texts])
    shared = relative([float(shared_words(question, t)) for t in texts])
    vectors = encode([question, *texts], DenseParams())
    cosine = relative([float(x) for x in vectors[1:] @ vectors[0]])
    logits = relative([float(x) for x in scorer.score(question, texts).logits])
    numeric = NUMERIC_QUESTION.search(question) is not None
    asked = set(WORD.findall(question.lower()))
    rows = []
    for i, t in enumerate(texts):
        words = WORD.findall(t.lower())
        new = sum(w not in asked for w in words) / max(len(words), 1)
        rows.append([weighted[i], shared[i], cosine[i], logits[i], i / len(texts),
                     float(numeric and DIGIT.search(t) is not None), new, math.log(1 + len(words))])
    return np.asarray(rows, dtype=np.float64)


def cross_validated_choice(features: list[np.ndarray], labels: list[np.ndarray], columns: list[int],
                           folds: int = 5, seed: int = 0) -> list[int]:
    """Each question's chosen sentence by a fit on the other folds' questions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fold = np.random.default_rng(seed).integers(0, folds, len(features))
    chosen = [0] * len(features)
    for k in range(folds):
        train = [i for i in range(len(features)) if fold[i] != k]
        x = np.vstack([features[i][:, columns] for i in train])
        y = np.concatenate([labels[i] for i in train])
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(x, y)
        for i in np.flatnonzero(fold == k):
            scores = model.decision_function(features[i][:, columns])
            chosen[i] = max(range(len(scores)), key=lambda j: (scores[j], -j))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--out", type=Path, default=Path("results/answer_sentence_ranker-train.json"))
    args = parser.parse_args()
    bm25, questions = selection_set("train", args.limit)
    scorer = CrossEncoder.load()
    features = [sentence_features(q.text, q.sentences, bm25, scorer)
                for q in tqdm(questions, desc="features", unit="question")]
    labels = [np.asarray(q.holds(), dtype=int) for q in questions]
    weighted = [max(range(len(f)), key=lambda j: (f[j, 0], -j)) for f in features]
    shares = {"weighted words (shipped)": float(np.mean([y[c] for y, c in zip(labels, weighted, strict=True)]))}
    for name, columns in (("A: all eight features", list(range(len(FEATURES)))),
                          ("B: without the cross-encoder", WITHOUT_CROSS_ENCODER)):
        chosen = cross_validated_choice(features, labels, columns)
        shares[name] = float(np.mean([y[c] for y, c in zip(labels, chosen, strict=True)]))
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
              "questions": len(features), "features": list(FEATURES), "folds": 5, "sentence_holds_answer": shares}
    print(f"XQuAD train: {len(features)} questions, judged passage, 5-fold cross-validation")
    print("| answer sentence chosen by | holds a gold answer |")
    print("|---|---|")
    for name, share in shares.items():
        print(f"| {name} | {share:.1%} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
