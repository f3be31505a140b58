"""Resident memory (RSS) of a process and all its descendants, read from /proc (Linux), and a sampler that records
it every few seconds while a benchmark runs: a server's memory over a load test.

    with RssSampler(server.pid, every=2.0) as rss:
        drive_the_server()
    rss.samples  # [(seconds from the start, MiB), ...]
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (uvicorn's worker processes are the server's children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after the command name, which may hold spaces
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we listed
        children.setdefault(ppid, []).append(int(stat.parent.name))
    pids, todo = [], [root]
    while todo:
        pids.append(pid := todo.pop())
        todo.extend(children.get(pid, []))
    return pids


def tree_rss_mb(root: int) -> float:
    """Resident memory of `root`'s process tree, summed over its processes, in MiB."""
    pages = 0
    for pid in tree_pids(root):
        try:
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass  # ended since it was listed
    return pages * PAGE_BYTES / 2**20


class RssSampler:
    """Samples `tree_rss_mb(pid)` every `every` seconds in a thread while the ``with`` block runs, and once at each
    end: ``samples`` holds (seconds from the start, MiB), rounded to 0.1."""

    def __init__(self, pid: int, every: float):
        if every <= 0:
            raise ValueError(f"every must be positive, got {every}")
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self._started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        self.samples.append((round(time.monotonic() - self._started, 1), round(tree_rss_mb(self.pid), 1)))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
