"""Which way of choosing the answer sentence works best? Measured on the judged passage, no recall involved.

    python benchmarks/answer_sentence_choice.py [--split train] [--limit 0]

For every XQuAD question of the split (default train: the selection set of docs/experiments/answer-sentence.md,
second round), the question's judged passage is cut into sentences (`indexes.sentences`) and each candidate way
of choosing picks one. Reported: the share of questions whose chosen sentence holds a gold answer string
(`metadata.answers`, exact substring), and the ceiling (some sentence holds one). Prints a table and writes
results/answer_sentence_choice-<split>.json with the commit, machine and command. Choose on train or dev;
`benchmarks/answer_sentence.py --split test` reports the shipped choice through the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from earlyrank.engine.answer_sentence import MAX_SENTENCES, fused_ranks, shared_words, weighted_overlap
from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import load_dataset
from earlyrank.indexes.bm25 import BM25Index
from earlyrank.indexes.dense import DenseParams, encode
from earlyrank.indexes.sentences import sentence_spans

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def first_best(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def sentence_bm25(query_idf: dict[str, float], sentences: list[list[str]], k1: float = 1.2, b: float = 0.75
                  ) -> list[float]:
    """Okapi BM25 of each tokenized sentence for the question's terms (`query_idf`: term -> the corpus' IDF), the
    passage's sentences being the collection for the length normalisation (third-round candidate)."""
    average = sum(map(len, sentences)) / max(len(sentences), 1) or 1.0
    values = []
    for terms in sentences:
        counts = Counter(terms)
        norm = k1 * (1 - b + b * len(terms) / average)
        values.append(sum(max(idf, 0.0) * counts[t] * (k1 + 1) / (counts[t] + norm)
                          for t, idf in query_idf.items() if counts[t]))
    return values


def orders(scorer, bm25: BM25Index, question: str, passage: str, texts: list[str]) -> dict[str, list[float]]:
    """Every candidate's value per sentence (higher is better)."""
    alone = [float(x) for x in scorer.score(question, texts).logits]
    context = [texts[i - 1] + " " + t if i else t for i, t in enumerate(texts)]
    with_context = [float(x) for x in scorer.score(question, context).logits]
    removed = [" ".join(texts[:i] + texts[i + 1:]) for i in range(len(texts))]
    whole = float(scorer.score(question, [passage]).logits[0])
    drop = [whole - float(x) for x in scorer.score(question, removed).logits] if len(texts) > 1 else [0.0]
    shared = [float(shared_words(question, t)) for t in texts]
    question_idf = bm25.term_idf(question)  # the corpus' Lucene IDF, as the pipeline reads it from its index
    weighted = [weighted_overlap(question_idf, bm25.tokenize(t)) for t in texts]
    vectors = encode([question, *texts], DenseParams())  # the index's dense encoder, MiniLM; normalized
    cosine = [float(x) for x in vectors[1:] @ vectors[0]]
    okapi = sentence_bm25(question_idf, [bm25.tokenize(t) for t in texts])
    return {
        "cross-encoder + shared words (shipped before)": fused_ranks(alone, shared),
        "cross-encoder alone": alone,
        "shared words": shared,
        "weighted words": weighted,
        "cross-encoder + weighted words": fused_ranks(alone, weighted),
        "cross-encoder with context": with_context,
        "occlusion": drop,
        "occlusion + shared words": fused_ranks(drop, shared),
        "occlusion + cross-encoder + shared words": fused_ranks(drop, alone, shared),
        "bi-encoder": cosine,
        "weighted words + bi-encoder": fused_ranks(weighted, cosine),
        "sentence BM25": okapi,
        "sentence BM25 + bi-encoder": fused_ranks(okapi, cosine),
        "weighted words + bi-encoder + cross-encoder": fused_ranks(weighted, cosine, alone),
        "first sentence": [1.0] + [0.0] * (len(texts) - 1),
    }


@dataclass(frozen=True)
class SelectionQuestion:
    """An XQuAD question with gold answer strings, its judged passage and that passage's sentences (the shipped
    splitter, the first `MAX_SENTENCES`)."""

    text: str
    passage: str
    sentences: list[str]
    gold: list[str]

    def holds(self) -> list[bool]:
        """Per sentence: whether it holds a gold answer string (exact substring)."""
        return [any(g in t for g in self.gold) for t in self.sentences]


def selection_set(split: str, limit: int = 0) -> tuple[BM25Index, list[SelectionQuestion]]:
    """XQuAD's `split` questions (the first `limit`; 0: all) that have a judged passage and a gold answer, and a BM25
    index of the corpus whose IDF weighs their words, as the pipeline reads it from its index. Shared by this
    program and benchmarks/answer_sentence_ranker.py, so both rounds choose on the same questions."""
    dataset = load_dataset(SHARED / "xquad-en")
    queries, qrels = dataset.split(split)
    passages = {d.id: d.text for d in dataset.corpus}
    asked = []
    for q in queries[:limit or None]:
        judged = [pid for pid, grade in qrels[q.id].items() if grade > 0 and pid in passages]
        gold = [a for a in q.metadata.get("answers", []) if a]
        if judged and gold:
            passage = passages[judged[0]]
            asked.append(SelectionQuestion(q.text, passage, [passage[a:b] for a, b in
                                                             sentence_spans(passage)[:MAX_SENTENCES]], gold))
    return BM25Index.build(list(passages), list(passages.values())), asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="train", help="train (the selection set) or another split")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--out", type=Path, default=None, help="default: results/answer_sentence_choice-<split>.json")
    args = parser.parse_args()
    out = args.out or Path(f"results/answer_sentence_choice-{args.split}.json")
    bm25, questions = selection_set(args.split, args.limit)
    scorer = CrossEncoder.load()
    hits: Counter[str] = Counter()
    asked = ceiling = 0
    for q in tqdm(questions, desc="choose", unit="question"):
        holds = q.holds()
        asked += 1
        ceiling += any(holds)
        for name, values in orders(scorer, bm25, q.text, q.passage, q.sentences).items():
            hits[name] += holds[first_best(values)]
    shares = {name: hits[name] / max(asked, 1) for name in hits}
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(), "split": args.split,
              "questions": asked, "ceiling": ceiling / max(asked, 1), "sentence_holds_answer": shares}
    print(f"XQuAD {args.split}: {asked} questions, judged passage; ceiling {record['ceiling']:.1%}")
    print("| answer sentence chosen by | holds a gold answer |")
    print("|---|---|")
    for name, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {share:.1%} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
