"""Does the highlighted answer sentence hold the answer? XQuAD test, through the pipeline users get.

    python benchmarks/answer_sentence.py [--limit 0]

For every XQuAD test question, `Pipeline.ask` (hybrid recall, the shipped cross-encoder and its tuned stopping
rule) gives the answer passage and its answer sentence. Among the questions whose top passage is judged
relevant, it reports the share whose sentence contains one of the gold answer strings (`metadata.answers`,
exact substring), for the cross-encoder's choice and, measured the same way, for two choices with no model:
the sentence sharing the most words with the question, and the passage's first sentence. Prints a table and
writes results/answer_sentence.json with the commit, machine and command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from tqdm import tqdm

from earlyrank.engine.answer_sentence import sentence_spans
from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.corpora import dataset_index
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.model_files import DEFAULT_MODEL
from earlyrank.engine.operating_point import load_operating_point
from earlyrank.engine.pipeline import Pipeline

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
WORD = re.compile(r"\w+")


def overlap_choice(query: str, passage: str) -> str:
    """The sentence sharing the most distinct lowercase words with the question (the first of equals)."""
    words = set(WORD.findall(query.lower()))
    spans = sentence_spans(passage)
    best = max(spans, key=lambda s: (len(words & set(WORD.findall(passage[s[0]:s[1]].lower()))), -s[0]))
    return passage[best[0]:best[1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="only the first N test questions (0: all)")
    parser.add_argument("--out", type=Path, default=Path("results/answer_sentence.json"))
    args = parser.parse_args()
    dataset = load_dataset(SHARED / "xquad-en")
    queries, qrels = dataset.split("test")
    queries = queries[:args.limit or None]
    policy, blend = load_operating_point(DEFAULT_MODEL, 30)
    pipeline = Pipeline(dataset_index(dataset), CrossEncoder.load(), policy, "hybrid", 30, blend)
    right, hits = 0, {"cross-encoder (shipped)": 0, "most shared words (no model)": 0, "first sentence": 0}
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
        first = sentence_spans(passage)[0]
        for name, sentence in (("cross-encoder (shipped)", answer.sentence.text),
                               ("most shared words (no model)", overlap_choice(q.text, passage)),
                               ("first sentence", passage[first[0]:first[1]])):
            hits[name] += any(g in sentence for g in gold)
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
              "questions": len(queries), "top_passage_right": right,
              "sentence_holds_answer": {k: v / max(right, 1) for k, v in hits.items()},
              "ask_seconds_p50": sorted(sentence_seconds)[len(sentence_seconds) // 2]}
    print(f"XQuAD test: {right} of {len(queries)} questions have a relevant top passage")
    print("| answer sentence chosen by | holds a gold answer |")
    print("|---|---|")
    for name, share in record["sentence_holds_answer"].items():
        print(f"| {name} | {share:.1%} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
