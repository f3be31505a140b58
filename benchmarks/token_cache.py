"""Memory of the cross-encoder's word-piece cache: bytes it counts against the bytes the process really grows.

    python benchmarks/token_cache.py [--passages 3000]

Tokenizes SciFact passages through a `TokenCache` with no effective bound and reports, per cached passage,
the bytes the cache counts (`TokenCache.bytes_used`) and the growth of the process's resident memory (RSS,
from /proc/self/statm), then how many SciFact passages the default bound holds. Prints a table and writes
results/token_cache.json with the commit, machine and command.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.model_files import DEFAULT_MODEL
from earlyrank.engine.token_cache import DEFAULT_MAX_BYTES, TokenCache

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def rss_bytes() -> int:
    """Resident set size now, in bytes (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("results/token_cache.json"))
    args = parser.parse_args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_MODEL), local_files_only=True)
    texts = [d.full_text for d in load_dataset(SHARED / "scifact").corpus[:args.passages]]

    def tokenize(missing: list[str]) -> list[list[int]]:
        return [ids[:512] for ids in tokenizer(missing, add_special_tokens=False, verbose=False)["input_ids"]]

    tokenize(texts[:50])  # warm up the tokenizer's own buffers before measuring
    cache = TokenCache(max_bytes=1 << 40)
    gc.collect()
    before = rss_bytes()
    for start in range(0, len(texts), 100):
        cache.get_many(texts[start:start + 100], tokenize)
    gc.collect()
    grown = rss_bytes() - before
    ids = sum(len(i) for i in cache.get_many(texts, tokenize))
    record = {
        "command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
        "passages": len(texts), "word_pieces_mean": ids / len(texts),
        "counted_bytes_per_passage": cache.bytes_used / len(texts), "rss_bytes_per_passage": grown / len(texts),
        "default_max_bytes": DEFAULT_MAX_BYTES,
        "scifact_passages_at_default_bound": int(DEFAULT_MAX_BYTES / (cache.bytes_used / len(texts))),
    }
    print("| passages | word pieces each | counted bytes each | RSS growth each | passages in the default bound |")
    print("|---|---|---|---|---|")
    print(f"| {record['passages']} | {record['word_pieces_mean']:.0f} | {record['counted_bytes_per_passage']:.0f} | "
          f"{record['rss_bytes_per_passage']:.0f} | {record['scifact_passages_at_default_bound']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
