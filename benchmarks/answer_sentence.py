"""Does the highlighted answer sentence hold the answer? XQuAD test, through the pipeline users get.

    python benchmarks/answer_sentence.py [--split test] [--limit 0]

For every XQuAD question of the split, `Pipeline.ask` (hybrid recall, the shipped cross-encoder and its tuned
stopping rule) gives the answer passage and its answer sentence. Among the questions whose top passage is
judged relevant, it reports the share whose sentence contains one of the gold answer strings
(`metadata.answers`, exact substring), for the shipped choice and, measured the same way, for the other ways
of choosing weighed in docs/experiments/answer-sentence.md. Choose on dev; report on test. Prints a table and
writes results/answer_sentence-<split>.json with the commit, machine and command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from earlyrank.engine.answer_sentence import MAX_SENTENCES, fused_ranks, shared_words
from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.corpora import dataset_index
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.model_files import DEFAULT_MODEL
from earlyrank.engine.operating_point import load_operating_point
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.tuning import split_queries
from earlyrank.indexes.sentences import sentence_spans

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def first_of(texts: list[str], values: list[float]) -> str:
    """The text with the highest value (the first of equals)."""
    return texts[max(range(len(texts)), key=lambda i: (values[i], -i))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", help="dev (the train questions the model held out) to "
                                                         "choose, test to report")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--out", type=Path, default=None, help="default: results/answer_sentence-<split>.json")
    args = parser.parse_args()
    out = args.out or Path(f"results/answer_sentence-{args.split}.json")
    dataset = load_dataset(SHARED / "xquad-en")
    queries, qrels = split_queries(dataset, args.split, DEFAULT_MODEL)
    queries = queries[:args.limit or None]
    policy, blend = load_operating_point(DEFAULT_MODEL, 30)
    pipeline = Pipeline(dataset_index(dataset), CrossEncoder.load(), policy, "hybrid", 30, blend)
    names = ("shipped: weighted words (no model)", "fused ranks of the two below (shipped before)",
             "cross-encoder alone", "most shared words (no model)", "cross-encoder with title", "first sentence")
    right, hits = 0, dict.fromkeys(names, 0)
    sentence_seconds = []
    for q in tqdm(queries, desc="ask", unit="question"):
        started = time.perf_counter()
        answer = pipeline.ask(q.text, k=1)
        sentence_seconds.append(time.perf_counter() - started)
        if answer.answer is None or qrels[q.id].get(answer.answer.id, 0) <= 0 or answer.sentence is None:
            continue
        right += 1
        gold = [a for a in q.metadata.get("answers", []) if a]
        passage = answer.answer.text
        spans = sentence_spans(passage)[:MAX_SENTENCES]
        texts = [passage[a:b] for a, b in spans]
        alone = [float(c) for c in pipeline.scorer.score(q.text, texts).confidences]
        titled = [float(c) for c in pipeline.scorer.score(q.text, [f"{answer.answer.title}. {t}" for t in texts])
                  .confidences]
        shared = [float(shared_words(q.text, t)) for t in texts]
        choices = (answer.sentence.text, first_of(texts, fused_ranks(alone, shared)), first_of(texts, alone),
                   first_of(texts, shared), first_of(texts, titled), texts[0])
        for name, sentence in zip(names, choices, strict=True):
            hits[name] += any(g in sentence for g in gold)
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
              "split": args.split, "questions": len(queries), "top_passage_right": right,
              "sentence_holds_answer": {k: v / max(right, 1) for k, v in hits.items()},
              "ask_seconds_p50": sorted(sentence_seconds)[len(sentence_seconds) // 2]}
    print(f"XQuAD {args.split}: {right} of {len(queries)} questions have a relevant top passage")
    print("| answer sentence chosen by | holds a gold answer |")
    print("|---|---|")
    for name, share in record["sentence_holds_answer"].items():
        print(f"| {name} | {share:.1%} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
