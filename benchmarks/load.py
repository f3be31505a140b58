"""Load test of the service on loopback: throughput, latency percentiles and errors per concurrency level.

    python benchmarks/load.py [--seconds 10] [--levels 1 8 32 128] [--workers 2]
    python benchmarks/load.py --data ../shared/datasets/scifact --endpoints /v1/answer --levels 1 --batching off \
        --workers --seconds 60 --out results/load-scifact-answer.json   # /v1/answer latency on SciFact, one client

Starts `earlyrank serve` on the default index and model with micro-batching on, then off
(EARLYRANK_BATCHING), then with micro-batching on in N worker processes for each --workers N, and drives
`/v1/answer` (XQuAD test questions) and `/v1/rerank` (a question and 20 passages) with N concurrent clients
for a fixed time each. A 429 is the designed answer to more work than EARLYRANK_MAX_CONCURRENT (per worker);
any other non-200 is an error. Writes results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.datasets import DEFAULT_CORPUS, load_dataset


def payloads(endpoint: str, rng: random.Random, data: Path = DEFAULT_CORPUS) -> list[dict]:
    ds = load_dataset(data)
    questions = [q.text for q in ds.split("test")[0]]
    if endpoint == "/v1/answer":
        return [{"query": q, "top_k": 5} for q in questions]
    texts = [d.full_text for d in ds.corpus]
    return [{"query": q, "documents": rng.sample(texts, 20), "top_n": 3} for q in questions[:100]]


async def drive(base: str, endpoint: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    stop = time.monotonic() + seconds

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        i = worker
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                response = await http.post(base + endpoint, json=bodies[i % len(bodies)])
                key = str(response.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            latencies.append(time.perf_counter() - started)
            statuses[key] = statuses.get(key, 0) + 1
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.monotonic()
        await asyncio.gather(*(client(w, http) for w in range(clients)))
        elapsed = time.monotonic() - started
    ok = statuses.get("200", 0)
    lat = np.asarray(latencies) * 1000
    return {"clients": clients, "seconds": elapsed, "requests": len(latencies), "ok": ok,
            "ok_per_s": ok / elapsed, "statuses": statuses,
            "errors": sum(v for k, v in statuses.items() if k not in ("200", "429")),
            **{f"p{q}_ms": float(np.percentile(lat, q)) for q in (50, 95, 99)}}


def serve(port: int, batching: bool, workers: int, index: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "EARLYRANK_PORT": str(port), "EARLYRANK_BATCHING": str(batching).lower(),
           "EARLYRANK_WORKERS": str(workers), **({"EARLYRANK_INDEX_PATH": str(index)} if index else {})}
    proc = subprocess.Popen([sys.executable, "-m", "earlyrank.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                time.sleep(10 if workers > 1 else 0)  # one worker answered; give the others time to load
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the service did not become ready in 5 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--levels", nargs="*", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", nargs="*", type=int, default=[2], help="worker counts to try (batching on)")
    parser.add_argument("--data", type=Path, default=None, help=(
        "a BEIR data set: serve an index of its corpus (built into the cache) and ask its test questions "
        "(default: the bundled demo corpus and index)"))
    parser.add_argument("--batching", choices=("both", "on", "off"), default="both")
    parser.add_argument("--endpoints", nargs="*", default=["/v1/answer", "/v1/rerank"])
    parser.add_argument("--out", type=Path, default=Path("results/load.json"))
    args = parser.parse_args()
    rng = random.Random(0)
    index = None
    if args.data is not None:
        from earlyrank.engine.corpora import dataset_index

        index = dataset_index(load_dataset(args.data, check_judged=False)).path
    bodies = {e: payloads(e, rng, args.data or DEFAULT_CORPUS) for e in args.endpoints}
    rows = []
    print(f"{'batching':<8} {'workers':>7} {'endpoint':<11} {'clients':>7} {'ok/s':>6} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'429s':>6} {'errors':>6}")
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.batching]
    setups = [(b, 1) for b in modes] + [(True, n) for n in args.workers if n > 1 and True in modes]
    for batching, workers in setups:
        proc = serve(args.port, batching, workers, index)
        try:
            for endpoint, items in bodies.items():
                for clients in args.levels:
                    row = asyncio.run(drive(f"http://127.0.0.1:{args.port}", endpoint, items, clients, args.seconds))
                    row.update({"batching": batching, "workers": workers, "endpoint": endpoint})
                    rows.append(row)
                    print(f"{str(batching):<8} {workers:>7} {endpoint:<11} {clients:>7} {row['ok_per_s']:>6.2f} "
                          f"{row['p50_ms']:>8.0f} {row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f} "
                          f"{row['statuses'].get('429', 0):>6} {row['errors']:>6}", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
                                    "data": str(args.data or DEFAULT_CORPUS), "seconds": args.seconds,
                                    "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
