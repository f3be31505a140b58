"""Cross-encoder speed per backend, next to this machine's compute bound.

    python benchmarks/speed.py [--model DIR] [--pairs 256] [--lengths 128 192 256]

For each backend (torch-fp32, torch-bf16, onnx-fp32, onnx-int8): pairs/s and ms/pair on SciFact
(claim, abstract) pairs truncated at each length, start-up time and resident memory after loading. The compute
bound is FLOPs per pair (from the model's shape at that length) divided by the rate a large matrix product
reaches here in the same run (torch fp32 and bf16 matmul; int8 via ONNX Runtime's MatMulInteger), so the table
shows each backend's fraction of it. Quality per backend is measured by `earlyrank bench --backend ...`.
Writes results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import git_commit, machine

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")


def flops_per_pair(layers: int, hidden: int, intermediate: int, length: int) -> float:
    """Multiply-adds x2 of the encoder: projections and feed-forward (linear in length), attention (quadratic)."""
    linear = 2 * length * (4 * hidden * hidden + 2 * hidden * intermediate)
    attention = 2 * 2 * length * length * hidden
    return layers * (linear + attention)


def matmul_peak(dtype: str, n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of a large square matrix product in `dtype` (best of `repeat`)."""
    import torch

    if dtype == "int8":
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "mm",
                                  [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
                                   helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
                                  [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        a = np.random.randint(0, 255, (n, n), dtype=np.uint8)
        b = np.random.randint(-127, 127, (n, n), dtype=np.int8)
        run = lambda: session.run(None, {"a": a, "b": b})  # noqa  # noqa: E731
        _ = onnx
    else:
        t = torch.float32 if dtype == "fp32" else torch.bfloat16
        a, b = torch.randn(n, n, dtype=t), torch.randn(n, n, dtype=t)
        run = lambda: torch.mm(a, b)  # noqa  # noqa: E731
    run()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_backend(model: Path, backend: str, lengths: list[int], pairs: int, batch_sizes: list[int]) -> dict:
    """Run in a fresh process per backend, so start-up time and memory are the backend's own."""
    code = f"""
import json, time, resource, sys
started = time.perf_counter()
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import load_dataset
scorer = CrossEncoder.load({str(model)!r}, backend={backend!r})
scorer.logits(["warm"], ["up"])
startup = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ds = load_dataset({str(SHARED / "scifact")!r})
queries = [q.text for q in ds.queries.values()]
docs = [d.full_text for d in ds.corpus]
qs = [queries[i % len(queries)] for i in range({pairs})]
ps = [docs[(7 * i) % len(docs)] for i in range({pairs})]
rows = []
for length in {lengths!r}:
    scorer.max_length = length
    scorer.logits(qs[:16], ps[:16])
    t = time.perf_counter()
    scorer.logits(qs, ps)
    seconds = time.perf_counter() - t
    tokens = [len(scorer.encode([q], [p])["input_ids"][0]) for q, p in zip(qs[:64], ps[:64])]
    t = time.perf_counter()
    for start in range(0, {pairs}, scorer.batch_size):
        scorer.encode(qs[start:start + scorer.batch_size], ps[start:start + scorer.batch_size])
    tokenize = time.perf_counter() - t
    rows.append({{"length": length, "pairs_per_s": {pairs} / seconds, "ms_per_pair": 1000 * seconds / {pairs},
                 "mean_tokens": sum(tokens) / len(tokens), "tokenize_share": tokenize / seconds}})
batches = []
scorer.max_length = {lengths[len(lengths) // 2]!r}
default_batch = scorer.batch_size
for size in {batch_sizes!r}:
    scorer.batch_size = size
    t = time.perf_counter()
    scorer.logits(qs, ps)
    batches.append({{"batch_size": size, "pairs_per_s": {pairs} / (time.perf_counter() - t)}})
scorer.batch_size = default_batch
print(json.dumps({{"backend": {backend!r}, "startup_s": startup, "rss_mb": rss, "rows": rows,
                  "batch_sizes": batches, "batch_length": scorer.max_length}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"backend": backend, "error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_dense(passages: int) -> list[dict]:
    """The dense encoder (MiniLM, sentence-transformers) on SciFact passages at 256 tokens, fp32 and bf16:
    passages/s, and how far bf16's normalized embeddings stray from fp32's (cosine)."""
    import torch

    from earlyrank.engine.datasets import load_dataset
    from earlyrank.indexes.dense import DenseParams, encode, load_encoder

    texts = [d.full_text for d in load_dataset(SHARED / "scifact").corpus[:passages]]
    params = DenseParams()
    encode(texts[:32], params)
    rows, reference = [], None
    for dtype in ("fp32", "bf16"):
        load_encoder(None, params.max_seq_length).to(torch.bfloat16 if dtype == "bf16" else torch.float32)
        started = time.perf_counter()
        vectors = encode(texts, params)
        seconds = time.perf_counter() - started
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(axis=1)
        rows.append({"dtype": dtype, "passages_per_s": len(texts) / seconds, "min_cosine_to_fp32": float(cosine.min()),
                     "mean_cosine_to_fp32": float(cosine.mean())})
    load_encoder(None, params.max_seq_length).to(torch.float32)
    return rows


def main() -> None:
    from transformers import AutoConfig

    from earlyrank.engine.model_files import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--lengths", nargs="*", type=int, default=[128, 192, 256])
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS))
    parser.add_argument("--dense-passages", type=int, default=512, help="passages for the dense encoder (0: skip)")
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[8, 16, 32, 64],
                        help="batch sizes tried at the middle length")
    parser.add_argument("--out", type=Path, default=Path("results/speed.json"))
    args = parser.parse_args()
    config = AutoConfig.from_pretrained(str(args.model), local_files_only=True)
    peaks = {d: matmul_peak(d) for d in ("fp32", "bf16", "int8")}
    results = [measure_backend(args.model, b, args.lengths, args.pairs, args.batch_sizes) for b in args.backends]
    peak_of = {"torch-fp32": "fp32", "onnx-fp32": "fp32", "torch-bf16": "bf16", "onnx-int8": "int8"}
    print(f"matmul peak here: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f}, "
          f"int8 {peaks['int8'] / 1e9:.0f} GOP/s")
    print(f"{'backend':<12} {'length':>6} {'tokens':>6} {'pairs/s':>8} {'ms/pair':>8} {'vs fp32':>7} {'bound/s':>8} "
          f"{'of bound':>8} {'tokenize':>8} {'start s':>7} {'RSS MB':>7}")
    baseline = {row["length"]: row["pairs_per_s"] for r in results if r["backend"] == "torch-fp32"
                for row in r.get("rows", [])}
    for r in results:
        if "error" in r:
            print(f"{r['backend']:<12} error: {r['error']}")
            continue
        for row in r["rows"]:
            flops = flops_per_pair(config.num_hidden_layers, config.hidden_size, config.intermediate_size,
                                   round(row["mean_tokens"]))
            row["bound_pairs_per_s"] = peaks[peak_of[r["backend"]]] / flops
            row["fraction_of_bound"] = row["pairs_per_s"] / row["bound_pairs_per_s"]
            row["speedup_vs_torch_fp32"] = row["pairs_per_s"] / baseline.get(row["length"], float("nan"))
            print(f"{r['backend']:<12} {row['length']:>6} {row['mean_tokens']:>6.0f} {row['pairs_per_s']:>8.1f} "
                  f"{row['ms_per_pair']:>8.1f} {row['speedup_vs_torch_fp32']:>6.2f}x "
                  f"{row['bound_pairs_per_s']:>8.0f} {row['fraction_of_bound']:>8.1%} {row['tokenize_share']:>8.1%} "
                  f"{r['startup_s']:>7.1f} {r['rss_mb']:>7.0f}")
    print("pairs/s by batch size (at length " + str(args.lengths[len(args.lengths) // 2]) + "):")
    sizes = args.batch_sizes
    print(f"{'backend':<12} " + " ".join(f"{'b=' + str(n):>8}" for n in sizes))
    for r in results:
        if "batch_sizes" in r:
            print(f"{r['backend']:<12} " + " ".join(f"{b['pairs_per_s']:>8.1f}" for b in r["batch_sizes"]))
    dense = measure_dense(args.dense_passages) if args.dense_passages else []
    if dense:
        print(f"dense encoder (MiniLM, {args.dense_passages} SciFact passages, 256 tokens):")
        for row in dense:
            print(f"  {row['dtype']}: {row['passages_per_s']:.1f} passages/s, cosine to fp32 min "
                  f"{row['min_cosine_to_fp32']:.5f} mean {row['mean_cosine_to_fp32']:.6f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"git_commit": git_commit(), "machine": machine(), "peaks": peaks,
                                    "model": str(args.model), "pairs": args.pairs, "results": results,
                                    "dense": dense}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
