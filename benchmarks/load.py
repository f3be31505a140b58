"""Load test of the service on loopback: throughput, latency percentiles, errors and the server's memory per
concurrency level, then an optional soak.

    python benchmarks/load.py [--seconds 10] [--levels 1 8 32 128] [--workers 2]
    python benchmarks/load.py --data ../shared/datasets/scifact --endpoints /v1/answer --levels 1 --batching off \
        --workers --seconds 60 --out results/load-scifact-answer.json   # /v1/answer latency on SciFact, one client
    nice -n 10 python benchmarks/load.py --batching on --workers 1 --seconds 20 --soak 600 \
        --out results/load-soak.json   # the levels, then 10 minutes at 32 clients: errors and RSS over time

Starts `earlyrank serve` on the default index and model with micro-batching on, then off
(EARLYRANK_BATCHING), then with micro-batching on in N worker processes for each --workers N, and drives
`/v1/answer` (XQuAD test questions) and `/v1/rerank` (a question and 20 passages) with N concurrent clients
for a fixed time each. A 429 is the designed answer to more work than EARLYRANK_MAX_CONCURRENT (per worker);
any other status, and any transport error or timeout, is an error. The resident memory (RSS) of the server's
whole process tree is sampled every --rss-every seconds. With --soak S, the first server then takes
--soak-clients clients mixing both endpoints for S seconds; each of its rerank requests carries --fresh
passages never sent before, so the word-piece cache keeps filling as with clients' own documents. The machine's
load average is recorded at the start and the end: figures taken while other jobs run are not speed figures.
Writes --out (default results/load.json) with the command, commit, files changed since it, machine, every level's
row and the soak minute by minute with its RSS series.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import httpx
import numpy as np

from earlyrank.engine.bench_memory import RssSampler
from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.datasets import DEFAULT_CORPUS, load_dataset

Pick = Callable[[int], tuple[str, dict]]  # request number -> (endpoint, body)


class Done(NamedTuple):
    """One finished request: when (seconds from the start), where, its status (or error name), latency, and for an
    error what was said (the exception, or the start of the body)."""

    at: float
    endpoint: str
    status: str
    seconds: float
    detail: str = ""


def payloads(endpoint: str, rng: random.Random, data: Path = DEFAULT_CORPUS) -> list[dict]:
    ds = load_dataset(data)
    questions = [q.text for q in ds.split("test")[0]]
    if endpoint == "/v1/answer":
        return [{"query": q, "top_k": 5} for q in questions]
    texts = [d.full_text for d in ds.corpus]
    return [{"query": q, "documents": rng.sample(texts, 20), "top_n": 3} for q in questions[:100]]


async def drive(base: str, pick: Pick, clients: int, seconds: float) -> tuple[list[Done], float]:
    """`clients` clients posting `pick(i)` back to back for `seconds`; every request finished, and the time taken."""
    done: list[Done] = []
    start = time.monotonic()
    stop = start + seconds

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        i = worker
        while time.monotonic() < stop:
            endpoint, body = pick(i)
            started = time.perf_counter()
            try:
                response = await http.post(base + endpoint, json=body)
                status = str(response.status_code)
                detail = "" if status in ("200", "429") else response.text[:300]
            except httpx.HTTPError as e:  # transport errors and timeouts are errors too
                status, detail = type(e).__name__, repr(e.__cause__ or e)
            done.append(Done(time.monotonic() - start, endpoint, status, time.perf_counter() - started, detail))
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(w, http) for w in range(clients)))
    return done, time.monotonic() - start


def summarize(done: list[Done], seconds: float) -> dict:
    """Requests, successes per second, statuses, errors (neither 200 nor 429), 429 share and latency percentiles."""
    statuses: dict[str, int] = {}
    for d in done:
        statuses[d.status] = statuses.get(d.status, 0) + 1
    ok = statuses.get("200", 0)
    lat = np.asarray([d.seconds for d in done]) * 1000
    errors = [d for d in done if d.status not in ("200", "429")]
    return {"seconds": seconds, "requests": len(done), "ok": ok, "ok_per_s": ok / seconds, "statuses": statuses,
            "errors": len(errors), "error_examples": [[round(d.at, 1), d.endpoint, d.status, d.detail]
                                                      for d in errors[:10]],
            "share_429": statuses.get("429", 0) / max(1, len(done)),
            **{f"p{q}_ms": float(np.percentile(lat, q)) if lat.size else None for q in (50, 95, 99)}}


def rss_summary(samples: list[tuple[float, float]]) -> dict:
    return {"rss_start_mb": samples[0][1], "rss_end_mb": samples[-1][1], "rss_max_mb": max(m for _, m in samples)}


def soak_rss(samples: list[tuple[float, float]], warmup: float) -> dict:
    """RSS after the warm-up (the first sample at or after `warmup` seconds) against the largest and the last."""
    after = [m for t, m in samples if t >= warmup] or [samples[-1][1]]
    return {"warmup_s": warmup, "after_warmup_mb": after[0], "max_mb": max(after), "end_mb": after[-1],
            "growth": after[-1] / after[0] - 1, "max_growth": max(after) / after[0] - 1,
            "series": [list(s) for s in samples]}


def per_minute(done: list[Done], samples: list[tuple[float, float]], seconds: float) -> list[dict]:
    """The soak minute by minute (the last one also holds the requests still finishing after the soak's end): its
    requests summarized, and the largest RSS sampled in it."""
    minutes = []
    count = max(1, round(seconds / 60))
    for m in range(count):
        end = 60 * (m + 1) if m < count - 1 else math.inf
        span = [d for d in done if 60 * m <= d.at < end]
        rss = [mb for t, mb in samples if 60 * m <= t < end]
        row = summarize(span, min(end, seconds) - 60 * m)
        minutes.append({"minute": m + 1, **{k: row[k] for k in ("requests", "ok_per_s", "share_429", "errors",
                                                              "p50_ms", "p95_ms")},
                        "rss_max_mb": max(rss) if rss else None})
    return minutes


def soak_pick(bodies: dict[str, list[dict]], fresh: int) -> tuple[Pick, itertools.count]:
    """Requests alternating over the endpoints; in a body with documents the first `fresh` get a numbered prefix,
    making them texts the server has never seen. Also the counter: `next` of it is the fresh texts sent."""
    endpoints = list(bodies)
    counter = itertools.count()

    def pick(i: int) -> tuple[str, dict]:
        endpoint = endpoints[i % len(endpoints)]
        items = bodies[endpoint]
        body = items[(i // len(endpoints)) % len(items)]
        if "documents" in body and fresh:
            docs = body["documents"]
            body = {**body, "documents": [f"Copy {next(counter)}: {d}" for d in docs[:fresh]] + docs[fresh:]}
        return endpoint, body

    return pick, counter


def serve(port: int, batching: bool, workers: int, index: Path | None = None, log: Path | None = None
          ) -> subprocess.Popen:
    env = {**os.environ, "EARLYRANK_PORT": str(port), "EARLYRANK_BATCHING": str(batching).lower(),
           "EARLYRANK_WORKERS": str(workers), **({"EARLYRANK_INDEX_PATH": str(index)} if index else {})}
    output = log.open("a") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "earlyrank.cli", "serve"], env=env, stdout=output, stderr=output)
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


def run_levels(args: argparse.Namespace, proc: subprocess.Popen, bodies: dict[str, list[dict]], batching: bool,
               workers: int) -> list[dict]:
    rows = []
    for endpoint, items in bodies.items():
        for clients in args.levels:
            load_1m = os.getloadavg()[0]
            with RssSampler(proc.pid, args.rss_every) as rss:
                done, seconds = asyncio.run(drive(f"http://127.0.0.1:{args.port}",
                                                  lambda i, e=endpoint, b=items: (e, b[i % len(b)]),
                                                  clients, args.seconds))
            row = {"batching": batching, "workers": workers, "endpoint": endpoint, "clients": clients,
                   "load_1m": load_1m, **summarize(done, seconds), **rss_summary(rss.samples)}
            rows.append(row)
            print(f"{str(batching):<8} {workers:>7} {endpoint:<11} {clients:>7} {row['ok_per_s']:>6.2f} "
                  f"{row['p50_ms']:>8.0f} {row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f} "
                  f"{row['share_429']:>6.0%} {row['errors']:>6} {row['rss_start_mb']:>7.0f} {row['rss_end_mb']:>7.0f} "
                  f"{row['rss_max_mb']:>7.0f}", flush=True)
    return rows


def run_soak(args: argparse.Namespace, proc: subprocess.Popen, bodies: dict[str, list[dict]]) -> dict:
    pick, counter = soak_pick(bodies, args.fresh)
    print(f"soak: {args.soak_clients} clients over {', '.join(bodies)} for {args.soak:.0f} s", flush=True)
    with RssSampler(proc.pid, args.rss_every) as rss:
        done, seconds = asyncio.run(drive(f"http://127.0.0.1:{args.port}", pick, args.soak_clients, args.soak))
    minutes = per_minute(done, rss.samples, seconds)
    print(f"{'minute':>6} {'requests':>8} {'ok/s':>6} {'429s':>5} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'RSS MiB':>7}")
    for m in minutes:
        print(f"{m['minute']:>6} {m['requests']:>8} {m['ok_per_s']:>6.2f} {m['share_429']:>5.0%} {m['errors']:>6} "
              f"{m['p50_ms'] or 0:>7.0f} {m['p95_ms'] or 0:>7.0f} {m['rss_max_mb'] or 0:>7.0f}")
    memory = soak_rss(rss.samples, args.warmup)
    by_endpoint = {e: summarize([d for d in done if d.endpoint == e], seconds) for e in bodies}
    # A refused request never reaches the tokenizer: the fresh texts the server read are those of answered ones.
    fresh_read = args.fresh * sum(v["ok"] for e, v in by_endpoint.items() if "documents" in bodies[e][0])
    soak = {"clients": args.soak_clients, "fresh_per_request": args.fresh, "fresh_texts_sent": next(counter),
            "fresh_texts_answered": fresh_read, **summarize(done, seconds), "by_endpoint": by_endpoint,
            "minutes": minutes, "rss": memory}
    print(f"soak: {soak['requests']} requests, {soak['errors']} errors, {soak['share_429']:.0%} 429s, "
          f"{fresh_read} fresh passages answered; RSS {memory['after_warmup_mb']:.0f} MiB after {args.warmup:.0f} s, "
          f"max {memory['max_mb']:.0f}, end {memory['end_mb']:.0f} ({memory['growth']:+.1%}, max "
          f"{memory['max_growth']:+.1%})", flush=True)
    return soak


def uncommitted() -> list[str]:
    """Files of the package changed since the recorded commit: the figures come from the tree as it was."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "api", "cli", "engine", "indexes"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line[3:] for line in out.splitlines()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="each level's length")
    parser.add_argument("--levels", nargs="*", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", nargs="*", type=int, default=[2], help="worker counts to try (batching on)")
    parser.add_argument("--data", type=Path, default=None, help=(
        "a BEIR data set: serve an index of its corpus (built into the cache) and ask its test questions "
        "(default: the bundled demo corpus and index)"))
    parser.add_argument("--batching", choices=("both", "on", "off"), default="both")
    parser.add_argument("--endpoints", nargs="*", default=["/v1/answer", "/v1/rerank"])
    parser.add_argument("--soak", type=float, default=0, help="seconds of soak after the first server's levels")
    parser.add_argument("--soak-clients", type=int, default=32)
    parser.add_argument("--fresh", type=int, default=10, help="never-sent passages in each soak rerank request")
    parser.add_argument("--warmup", type=float, default=60.0, help="soak seconds before the RSS baseline")
    parser.add_argument("--rss-every", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--server-log", type=Path, default=None, help="append the server's output here")
    parser.add_argument("--out", type=Path, default=Path("results/load.json"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    load_start = os.getloadavg()
    rng = random.Random(0)
    index = None
    if args.data is not None:
        from earlyrank.engine.corpora import dataset_index

        index = dataset_index(load_dataset(args.data, check_judged=False)).path
    bodies = {e: payloads(e, rng, args.data or DEFAULT_CORPUS) for e in args.endpoints}
    rows, soak = [], None
    print(f"load average {', '.join(f'{x:.1f}' for x in load_start)} on {os.cpu_count()} cores")
    print(f"{'batching':<8} {'workers':>7} {'endpoint':<11} {'clients':>7} {'ok/s':>6} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'429s':>6} {'errors':>6} {'RSS MiB start/end/max':>23}")
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.batching]
    setups = [(b, 1) for b in modes] + [(True, n) for n in args.workers if n > 1 and True in modes]
    for n, (batching, workers) in enumerate(setups):
        proc = serve(args.port, batching, workers, index, args.server_log)
        try:
            rows += run_levels(args, proc, bodies, batching, workers)
            if n == 0 and args.soak > 0:
                soak = {"batching": batching, "workers": workers, **run_soak(args, proc, bodies)}
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    load_end = os.getloadavg()
    print(f"load average {', '.join(f'{x:.1f}' for x in load_end)} on {os.cpu_count()} cores"
          + (": other jobs were running, so latencies and ok/s are not speed figures"
             if max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1) else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "git_commit": git_commit(),
                                    "uncommitted": uncommitted(), "machine": machine(),
                                    "load_average": {"start": load_start, "end": load_end},
                                    "data": str(args.data or DEFAULT_CORPUS), "seconds": args.seconds,
                                    "rss_every": args.rss_every, "rows": rows, "soak": soak}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
