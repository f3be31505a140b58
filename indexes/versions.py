"""How a new version of an index is swapped in: crash-safe, reader-safe, and one writer at a time.

An index at ``PATH`` is a symbolic link to a sibling ``PATH.v-<id>`` directory. A writer (a build or an
update) holds ``PATH``'s lock file, fills a fresh ``.PATH.tmp-<id>`` directory, fsyncs every file and the
directory, renames it to its ``.v-<id>`` name, then atomically replaces the link (``rename(2)``). A crash at
any moment leaves either the old or the new version behind ``PATH``, both whole; a reader that resolved the
link just before the swap keeps its version for `SUPERSEDED_GRACE_SECONDS`, or, once more than `MAX_SUPERSEDED`
newer ones have come, for `MIN_GRACE_SECONDS` (so quick successive updates do not fill the disk).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from earlyrank.indexes.manifest import MANIFEST, IndexStoreError

log = logging.getLogger(__name__)

# A superseded version stays this long after its swap: a reader that resolved the link just before the swap
# is still opening its files (loading takes seconds; once loaded, an index no longer reads them).
SUPERSEDED_GRACE_SECONDS = 600.0
# ... but, once superseded more than MIN_GRACE_SECONDS ago, at most MAX_SUPERSEDED of them, the most recently
# superseded: each is a whole copy of the index, and a client sending one document at a time would otherwise fill
# the disk with hundreds of copies within the grace period. A version superseded less than MIN_GRACE_SECONDS ago is
# always kept: a reader may have resolved the link to it and still be opening its files.
MAX_SUPERSEDED = 2
MIN_GRACE_SECONDS = 30.0


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crash_point(name: str) -> None:
    """Test hook: die here, as a kill would, when EARLYRANK_CRASH_AT names this point."""
    if os.environ.get("EARLYRANK_CRASH_AT") == name:
        os._exit(137)


def index_link(out: str | Path) -> Path:
    """`out` as an absolute path whose folder exists; IndexStoreError if something other than an index link is
    there (a build must not replace a user's directory)."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_symlink():
        raise IndexStoreError(f"{out} exists and is not an earlyrank index link; choose another --out or remove it")
    return out


@contextmanager
def writer_lock(out: Path) -> Iterator[None]:
    """Hold the writer lock of the index at `out` (a ``.NAME.lock`` file beside it) for the block.

    A second build or update, in this process or another, waits here until the first has swapped its version
    in, so it starts from that version and no update is lost. The kernel drops the lock when its holder dies,
    even by kill -9, so a crash never leaves the index locked.
    """
    import fcntl

    fd = os.open(out.parent / f".{out.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # say why nothing happens, rather than look hung
            log.warning("waiting for another build or update of %s to finish ...", out)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def commit_version(out: Path, write: Callable[[Path], dict]) -> Path:
    """Write a new version of the index at `out` and swap it in; returns `out`. Call it holding `writer_lock`.

    `write(tmp)` fills the fresh directory `tmp` with the index's files and returns the manifest that lists them;
    this writes the manifest, fsyncs, renames and replaces the link. If `write` raises, nothing changes.
    """
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest = write(tmp)
        crash_point("parts")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for f in tmp.iterdir():
            fsync_path(f)
        fsync_path(tmp)
        final = out.parent / f"{out.name}.v-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        crash_point("synced")
        os.rename(tmp, final)
        crash_point("renamed")
        link_tmp = out.parent / f".{out.name}.link-{uuid.uuid4().hex[:8]}"
        os.symlink(final.name, link_tmp)
        previous = out.resolve() if out.is_symlink() else None
        crash_point("linked")
        os.replace(link_tmp, out)  # the one atomic step: readers see the old index or the new one
        fsync_path(out.parent)
        crash_point("swapped")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if previous is not None and previous != final and previous.is_dir():
        os.utime(previous)  # its mtime now says when it was superseded: readers may still be opening it
    remove_leftovers(out)
    return out


def remove_leftovers(out: Path, grace: float | None = None) -> None:
    """Delete temporary directories of interrupted builds beside `out`, versions superseded more than `grace`
    seconds ago (default `SUPERSEDED_GRACE_SECONDS`; a version's mtime is set when it is superseded), and, of those
    superseded more than `MIN_GRACE_SECONDS` ago (or `grace`, if shorter), all but the `MAX_SUPERSEDED` latest."""
    live = out.resolve()
    now = time.time()
    cutoff = now - (SUPERSEDED_GRACE_SECONDS if grace is None else grace)
    fresh = max(now - MIN_GRACE_SECONDS, cutoff)  # superseded since then: kept whatever the cap
    # Only what a writer of `out` makes: another index beside it named "kb.v-1" (a link) is not a version of "kb".
    version = re.compile(re.escape(out.name) + r"\.v-\d{14}-[0-9a-f]{6}")
    stale: list[Path] = []
    kept: list[Path] = []
    for sibling in out.parent.glob(f"*{glob.escape(out.name)}.*"):  # a name such as "docs[2024]" is no pattern
        if sibling.name.startswith((f".{out.name}.tmp-", f".{out.name}.link-")):
            stale.append(sibling)
        elif version.fullmatch(sibling.name) and sibling.is_dir() and not sibling.is_symlink() and sibling != live:
            mtime = sibling.lstat().st_mtime
            if mtime < cutoff:
                stale.append(sibling)
            elif mtime < fresh:
                kept.append(sibling)
    kept.sort(key=lambda p: (p.lstat().st_mtime, p.name), reverse=True)
    for sibling in stale + kept[MAX_SUPERSEDED:]:
        if sibling.is_symlink() or sibling.is_file():
            sibling.unlink(missing_ok=True)
        else:
            shutil.rmtree(sibling, ignore_errors=True)
