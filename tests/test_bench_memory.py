"""RSS of a process tree, as benchmarks/load.py samples a server's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from earlyrank.engine.bench_memory import RssSampler, tree_pids, tree_rss_mb

# A child that holds 200 MiB of touched memory until it is killed.
HOLDER = "import time; block = bytearray(200 * 2**20); print('ready', flush=True); time.sleep(60)"


def test_the_tree_holds_the_children_and_their_memory():
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, "
                               f"'-c', {HOLDER!r}])"], stdout=subprocess.PIPE, text=True)
    pids = [parent.pid]
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"  # the grandchild's line
        pids = tree_pids(parent.pid)
        assert len(pids) == 2 and pids[0] == parent.pid
        assert tree_rss_mb(parent.pid) > 200  # the grandchild's block counts
        with RssSampler(parent.pid, every=0.05) as rss:
            time.sleep(0.3)
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGTERM)
        parent.wait(timeout=10)
    assert len(rss.samples) >= 4 and rss.samples[0][0] == 0.0
    assert [t for t, _ in rss.samples] == sorted(t for t, _ in rss.samples)
    assert all(mb > 200 for _, mb in rss.samples)


def test_a_sampler_needs_a_positive_interval():
    with pytest.raises(ValueError, match="every"):
        RssSampler(1, every=0)
