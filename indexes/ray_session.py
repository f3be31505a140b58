"""A Ray connection for the optional scale-out paths (`earlyrank[ray]`): start a local cluster or join one.

Ray is imported only here and only when asked for; without it the error says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

INSTALL_HINT = "Ray is not installed; install the extra with: pip install 'earlyrank[ray]'"
LOCAL = "local"


def require_ray() -> Any:
    """The `ray` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to Ray for the duration of a ``with`` block; yields the `ray` module.

    No address (or ``"local"``) starts a local cluster of `num_cpus` (default: every core) without the
    dashboard; any other address (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.5:6379"``) joins that cluster.
    On exit it shuts down only what it started: joining a cluster leaves the cluster running, and inside an
    already open session (e.g. a test's) it neither starts nor stops anything.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address in (None, "", LOCAL):
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_capacity(ray: Any, workers: int, cpus_per_worker: float) -> None:
    """Refuse a worker count the cluster cannot place: actors that never start would hang the job."""
    if workers < 1 or cpus_per_worker <= 0:
        raise ValueError(f"need at least one worker with a positive CPU share, got {workers} x {cpus_per_worker}")
    available = ray.cluster_resources().get("CPU", 0.0)
    if workers * cpus_per_worker > available:
        raise ValueError(f"{workers} Ray workers x {cpus_per_worker} CPU need {workers * cpus_per_worker:g} CPUs; "
                         f"the cluster has {available:g}")
