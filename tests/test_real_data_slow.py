"""Recall on the real SciFact test split (../shared/datasets, present in CI): quality and rank-bm25 parity."""

from __future__ import annotations

from pathlib import Path

import pytest

from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.evaluation import evaluate_run, run_from_hits
from earlyrank.indexes.bm25 import BM25Index, BM25Params, RankBM25Index

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SCIFACT.is_dir(), reason=f"needs {SCIFACT}")]


@pytest.fixture(scope="module")
def scifact():
    ds = load_dataset(SCIFACT)
    return ds, [d.id for d in ds.corpus], [d.full_text for d in ds.corpus]


def test_default_bm25_reaches_published_quality(scifact):
    ds, ids, texts = scifact
    queries, qrels = ds.split("test")
    index = BM25Index.build(ids, texts)
    metrics = evaluate_run(qrels, run_from_hits({q.id: index.search(q.text, 100) for q in queries}))
    assert metrics["nDCG@10"] >= 0.675  # BEIR publishes 0.665; Pyserini's flat BM25 0.679
    assert metrics["R@100"] >= 0.9


def test_okapi_backend_gives_rank_bm25s_top10(scifact):
    ds, ids, texts = scifact
    params = BM25Params(idf="okapi")
    ours, reference = BM25Index.build(ids, texts, params), RankBM25Index(ids, texts, params)
    for query in list(ds.split("test")[0])[:40]:
        assert [h.doc_id for h in ours.search(query.text, 10)] == [h.doc_id for h in reference.search(query.text, 10)]
