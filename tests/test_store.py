from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pytest

from earlyrank.engine.datasets import load_corpus
from earlyrank.indexes import versions
from earlyrank.indexes.bm25 import BM25Index
from earlyrank.indexes.store import IndexStoreError, build_index, load_index
from earlyrank.indexes.types import Document


def _docs(tiny_dir) -> list[Document]:
    return load_corpus(tiny_dir / "corpus.jsonl")


def test_build_and_load_bm25_only(tiny_dir, tmp_path):
    out = build_index(_docs(tiny_dir), tmp_path / "idx", dense=False, progress=False)
    loaded = load_index(out)
    assert len(loaded.docs) == 12 and loaded.dense is None
    assert loaded.manifest["corpus"]["documents"] == 12
    assert set(loaded.manifest["files"]) == {"docs.jsonl", "bm25_tf.npz", *BM25Index.FILES.values()}
    assert [h.doc_id for h in loaded.retriever("bm25").search("capital of France", 2)] == ["d3", "d4"]
    with pytest.raises(IndexStoreError, match="no dense part"):
        loaded.retriever("dense")
    with pytest.raises(IndexStoreError, match="hybrid mode needs both parts"):
        loaded.retriever("hybrid")


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "bm25s_vocab.index.json").unlink(), "bm25s_vocab.index.json: missing from the index"),
    (lambda root: os.truncate(root / "bm25s_data.csc.index.npy", 100),
     "bm25s_data.csc.index.npy: 100 bytes, manifest says"),
    (lambda root: (root / "docs.jsonl").write_text((root / "docs.jsonl").read_text().replace("Cats", "Bats")),
     "docs.jsonl: checksum does not match"),
    (lambda root: (root / "manifest.json").write_text("{"), "manifest.json: unreadable"),
    (lambda root: (root / "manifest.json").unlink(), "manifest.json: missing"),
])
def test_broken_index_is_refused_with_file_and_hint(tiny_dir, tmp_path, damage, message):
    out = build_index(_docs(tiny_dir), tmp_path / "idx", dense=False, progress=False)
    damage(out.resolve())
    with pytest.raises(IndexStoreError, match=message) as info:
        load_index(out)
    assert "earlyrank index CORPUS_DIR --out" in str(info.value)


def test_refuses_to_replace_a_plain_directory(tiny_dir, tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(IndexStoreError, match="not an earlyrank index link"):
        build_index(_docs(tiny_dir), tmp_path / "data", dense=False, progress=False)


def test_rebuild_keeps_the_old_version_for_readers_then_cleans_it(tiny_dir, tmp_path):
    docs = _docs(tiny_dir)
    out = build_index(docs, tmp_path / "idx", dense=False, progress=False)
    first = out.resolve()
    build_index(docs[:5], out, dense=False, progress=False)
    assert len(load_index(out).docs) == 5
    assert len(load_index(first).docs) == len(docs)  # a reader that resolved the link before the swap
    old = first.stat().st_mtime - versions.SUPERSEDED_GRACE_SECONDS - 1
    os.utime(first, (old, old))  # superseded longer ago than the grace period
    second = out.resolve()
    build_index(docs[:4], out, dense=False, progress=False)
    assert not first.exists() and second.exists() and len(load_index(out).docs) == 4


def read_while(out, sizes: set[int], write: Callable[[], object], readers: int = 3) -> list[BaseException]:
    """Load the index at `out` again and again in `readers` threads while `write()` runs; returns every failure
    (a load whose document count is not in `sizes` included)."""
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                assert len(load_index(out).docs) in sizes
            except BaseException as e:  # noqa: BLE001 - every failure counts
                errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for r in threads:
        r.start()
    try:
        write()
    finally:
        done.set()
        for r in threads:
            r.join()
    return errors


def test_readers_never_fail_while_the_index_is_rebuilt(tiny_dir, tmp_path):
    """Readers once failed (FileNotFoundError, or 'no index here') when a build deleted the version they had
    just resolved."""
    docs = _docs(tiny_dir)
    out = build_index(docs, tmp_path / "idx", dense=False, progress=False)

    def rebuild() -> None:
        for i in range(40):
            build_index(docs[:len(docs) - i % 2], out, dense=False, progress=False)

    assert read_while(out, {len(docs), len(docs) - 1}, rebuild) == []


CRASH_SCRIPT = textwrap.dedent("""
    import sys
    from earlyrank.engine.datasets import load_corpus
    from earlyrank.indexes.store import build_index
    docs = load_corpus(sys.argv[1])[:4]
    build_index(docs, sys.argv[2], dense=False, progress=False)
""")


@pytest.mark.parametrize("point", ["parts", "synced", "renamed", "linked", "swapped"])
def test_kill_during_build_leaves_a_whole_index(tiny_dir, tmp_path, point):
    """A build killed at each step leaves the old index (or, once swapped, the new one) loadable and right."""
    out = build_index(_docs(tiny_dir), tmp_path / "idx", dense=False, progress=False)
    env = {**os.environ, "EARLYRANK_CRASH_AT": point}
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(tiny_dir / "corpus.jsonl"), str(out)],
                          env=env, capture_output=True)
    assert proc.returncode == 137, proc.stderr.decode()
    loaded = load_index(out)
    assert len(loaded.docs) == (4 if point == "swapped" else 12)
    docs = _docs(tiny_dir)[: len(loaded.docs)]
    fresh = BM25Index.build([d.id for d in docs], [d.full_text for d in docs])
    query = "capital of France, mice"
    assert loaded.retriever("bm25").search(query, 5) == fresh.search(query, 5)
    # The next build cleans whatever the crashed one left behind: no temporary directory or link; superseded
    # versions stay only for the readers' grace period, and the writers' lock file stays.
    build_index(_docs(tiny_dir), out, dense=False, progress=False)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert "idx" in leftovers and all(n in ("idx", ".idx.lock") or n.startswith("idx.v-") for n in leftovers)
    versions.remove_leftovers(out, grace=-1)  # once the grace period is over
    assert sorted(p.name for p in tmp_path.iterdir()) == [".idx.lock", "idx", out.resolve().name]


def test_kill_at_random_moments_never_breaks_the_index(tmp_path):
    """SIGKILL a larger build at several times; whatever happened, the index loads and is one whole corpus."""
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as f:
        for i in range(20000):
            f.write(json.dumps({"_id": f"d{i}", "text": f"passage {i} about topic {i % 97} and {i % 31}"}) + "\n")
    out = build_index(load_corpus(corpus)[:10], tmp_path / "idx", dense=False, progress=False)
    script = CRASH_SCRIPT.replace("[:4]", "")
    for delay in (0.3, 0.8, 1.5, 2.5):
        proc = subprocess.Popen([sys.executable, "-c", script, str(corpus), str(out)])
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert len(load_index(out).docs) in (10, 20000)


def test_an_index_of_format_1_is_refused_with_the_command_that_rebuilds_it(tiny_dir, tmp_path):
    """Format 2 normalizes BM25 tokens (NFKC, case folding); a format-1 index was tokenized otherwise."""
    out = build_index(_docs(tiny_dir), tmp_path / "idx", dense=False, progress=False)
    manifest = out.resolve() / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 1}))
    with pytest.raises(IndexStoreError, match=r"format version 1, this earlyrank reads 2 and 3; rebuild it with: "
                                              r"earlyrank index CORPUS_DIR --out .*idx"):
        load_index(out)


def age(versions_on_disk, seconds: float) -> None:
    """Make each version look superseded `seconds` ago, the last of them most recently."""
    for i, v in enumerate(sorted(versions_on_disk, key=lambda p: p.stat().st_mtime)):
        then = time.time() - seconds + i
        os.utime(v, (then, then))


def test_many_quick_updates_keep_only_the_latest_superseded_versions(tiny_dir, tmp_path):
    """55 HTTP updates in 30 s left 130 whole copies of the index on disk for ten minutes."""
    docs = _docs(tiny_dir)
    out = build_index(docs, tmp_path / "idx", dense=False, progress=False)
    for n in range(5, 9):  # swaps within MIN_GRACE_SECONDS: every version is kept, a reader may be opening it
        build_index(docs[:n], out, dense=False, progress=False)
    assert len(list(tmp_path.glob("idx.v-*"))) == 5
    age([v for v in tmp_path.glob("idx.v-*") if v != out.resolve()], versions.MIN_GRACE_SECONDS + 60)
    build_index(docs[:9], out, dense=False, progress=False)
    on_disk = sorted(tmp_path.glob("idx.v-*"))
    # the live version, the one it just superseded (fresh), and the latest MAX_SUPERSEDED older ones
    assert sorted(len(load_index(v).docs) for v in on_disk) == [6, 7, 8, 9]


def test_an_index_whose_name_is_a_glob_pattern_is_cleaned_too(tiny_dir, tmp_path):
    """The clean-up globbed the index's name: for "docs[2024]" it matched nothing, and every update kept a copy."""
    docs = _docs(tiny_dir)
    out = build_index(docs, tmp_path / "docs[2024]", dense=False, progress=False)
    for n in range(5, 9):
        build_index(docs[:n], out, dense=False, progress=False)
    age([p for p in tmp_path.iterdir() if p.name.startswith("docs[2024].v-") and p != out.resolve()],
        versions.MIN_GRACE_SECONDS + 60)
    build_index(docs[:9], out, dense=False, progress=False)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("docs[2024].v-")]) == 2 + versions.MAX_SUPERSEDED


def test_an_index_named_like_a_version_of_another_is_not_cleaned_up_as_one(tiny_dir, tmp_path):
    """Building "kb" four times deleted the user's own index "kb.v-1" beside it, taking it for an old version."""
    docs = _docs(tiny_dir)
    other = build_index(docs, tmp_path / "kb.v-1", dense=False, progress=False)
    out = build_index(docs, tmp_path / "kb", dense=False, progress=False)
    age([other, other.resolve()], versions.SUPERSEDED_GRACE_SECONDS + 60)
    for n in range(5, 9):
        build_index(docs[:n], out, dense=False, progress=False)
    assert len(load_index(other).docs) == len(docs)


def test_a_writer_waiting_for_the_lock_says_so(tmp_path, caplog):
    """A second `earlyrank add` or `delete` waited on the lock without a word and looked hung."""
    out = tmp_path / "idx"
    with versions.writer_lock(out):
        waiting = threading.Thread(target=lambda: versions.writer_lock(out).__enter__())
        waiting.start()
        deadline = time.monotonic() + 10
        while not any("waiting for another build or update" in r.getMessage() for r in caplog.records) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.monotonic() < deadline
    waiting.join(10)


def test_an_explicit_grace_longer_than_the_minimum_still_caps_the_versions(tiny_dir, tmp_path):
    """With a grace over MIN_GRACE_SECONDS given, the cap of MAX_SUPERSEDED never applied."""
    docs = _docs(tiny_dir)
    out = build_index(docs, tmp_path / "idx", dense=False, progress=False)
    for n in range(5, 10):
        build_index(docs[:n], out, dense=False, progress=False)
    age([v for v in tmp_path.glob("idx.v-*") if v != out.resolve()], 100)
    versions.remove_leftovers(out, grace=300)
    assert len(list(tmp_path.glob("idx.v-*"))) == 1 + versions.MAX_SUPERSEDED
