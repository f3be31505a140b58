"""Offline scoring cache, replay, calibration and tuning, driven by the fake scorer on the tiny data set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from earlyrank.engine.calibration import Calibration
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.offline import labelled_pairs, replay, score_split
from earlyrank.engine.operating_point import load_operating_point, policy_from
from earlyrank.engine.rerank import rerank
from earlyrank.engine.stopping import FullRerank, Threshold
from earlyrank.engine.tuning import ScoredSplit, calibrate, fit_prior, tune
from earlyrank.indexes.store import build_index, load_index


@pytest.fixture
def tiny(tiny_dir, tmp_path):
    ds = load_dataset(tiny_dir)
    index = load_index(build_index(ds.corpus, tmp_path / "idx", dense=False, progress=False))
    return ds, index


def test_score_split_caches_and_resumes(tiny, fake_scorer, tmp_path):
    ds, index = tiny
    queries, _ = ds.split("test")
    cache = tmp_path / "scores.jsonl"
    first = score_split(queries, index, fake_scorer, "bm25", 5, cache, progress=False)
    assert len(fake_scorer.batches) == 3 and [sq.query_id for sq in first] == ["q1", "q2", "q3"]
    assert first[0].candidates[0].doc_id == "d3" and len(first[0].logits) == len(first[0].candidates)
    # A crash mid-write leaves a cut line: that query (and only it) is scored again.
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    again = score_split(queries, index, fake_scorer, "bm25", 5, cache, progress=False)
    assert len(fake_scorer.batches) == 4
    np.testing.assert_array_equal(again[2].logits, first[2].logits)


def test_replay_equals_live_rerank(tiny, fake_scorer, tmp_path):
    ds, index = tiny
    queries, _ = ds.split("test")
    scored = score_split(queries, index, fake_scorer, "bm25", 5, tmp_path / "s.jsonl", progress=False)
    policy = Threshold(tau=0.5, chunk=2, depth=5)
    results, pairs, reasons = replay(scored, policy, Calibration())
    for q, sq in zip(queries, scored, strict=True):
        passages = [index.doc(h.doc_id).full_text for h in sq.candidates]
        live = rerank(q.text, sq.candidates, passages, fake_scorer, policy)
        assert [h.doc_id for h in live.hits] == [h.doc_id for h in results[q.id]]
    assert pairs.tolist() == [2, 2, 2] and reasons == ["confident"] * 3


def _dev(tiny, fake_scorer, tmp_path) -> list[ScoredSplit]:
    ds, index = tiny
    queries = list(ds.queries.values())
    qrels = {**ds.qrels["train"], **ds.qrels["test"]}
    scored = score_split(queries, index, fake_scorer, "bm25", 6, tmp_path / "dev.jsonl", progress=False)
    return [ScoredSplit("tiny", scored, qrels)]


def test_labelled_pairs_and_calibration(tiny, fake_scorer, tmp_path):
    dev = _dev(tiny, fake_scorer, tmp_path)
    logits, labels = labelled_pairs(dev[0].scored, dev[0].qrels)
    assert labels.sum() == 7 and len(logits) == len(labels)  # all 7 judged passages are in the candidates
    report = calibrate(tmp_path, dev, plot=False)
    assert report["after"]["ece"] <= report["before"]["ece"]
    assert Calibration.load(tmp_path / "calibration.json").method == "platt"


def test_prior_counts_relevant_ranks(tiny, fake_scorer, tmp_path):
    dev = _dev(tiny, fake_scorer, tmp_path)
    prior = fit_prior(dev, Calibration(), depth=6)
    # Every one of the 6 queries has its (first) relevant passage at BM25 rank 1; q2's second at rank 2.
    assert prior.relevant_at_rank[0] == pytest.approx(1.0) and prior.relevant_at_rank[1] == pytest.approx(1 / 6)
    assert len(prior.relevant_confidences) == 7


def test_tune_stores_a_cheaper_point_within_the_loss(tiny, fake_scorer, tmp_path):
    dev = _dev(tiny, fake_scorer, tmp_path)
    Calibration().save(tmp_path / "calibration.json")
    point = tune(tmp_path, dev, max_loss=0.01, depth=6)
    assert point["chosen"]["nDCG@10"] >= 0.99 * point["full_rerank"]["nDCG@10"]
    assert point["chosen"]["pairs_per_query"] <= point["full_rerank"]["pairs_per_query"]
    best = point["best_by_policy"]
    assert point["chosen"] in best.values()
    assert all(row["policy"] == name and row["nDCG@10"] >= 0.99 * point["full_rerank"]["nDCG@10"]
               for name, row in best.items())
    assert min(row["pairs_per_query"] for row in best.values()) == point["chosen"]["pairs_per_query"]
    policy, blend = load_operating_point(tmp_path)
    assert policy.name == point["chosen"]["policy"] and blend == point["blend"]
    assert json.loads((tmp_path / "operating_point.json").read_text())["dev_sets"] == ["tiny"]
    assert load_operating_point(tmp_path / "nowhere")[0] == FullRerank(depth=100)


def test_a_tuned_depth_cap_stays_a_cap_and_an_uncapped_point_follows_the_callers_depth():
    capped = {"policy": "threshold", "tau": 0.5, "chunk": 10, "depth": 30}
    assert policy_from(capped, None, depth=100, tuned_depth=100).depth == 30
    assert policy_from(capped, None, depth=20, tuned_depth=100).depth == 20  # never deeper than recalled
    uncapped = {**capped, "depth": 100}
    assert policy_from(uncapped, None, depth=200, tuned_depth=100).depth == 200
    assert policy_from(uncapped, None).depth == 100


def test_bench_cuts_recall_only_for_full_rerank_rows_and_keeps_a_capped_policys_tail(tiny, fake_scorer, tmp_path):
    from earlyrank.engine.bench import rerank_rows

    ds, index = tiny
    dev = _dev(tiny, fake_scorer, tmp_path)[0]
    configs = [("full rerank top-2", "full", FullRerank(depth=2, chunk=2)),
               ("capped", "chosen", Threshold(tau=0.99, chunk=2, depth=2))]
    rows, results = rerank_rows(dev, dev.qrels, Calibration(), 0.0, configs, 0.01, 1.0, tmp_path)
    full, capped = rows
    assert all(len(hits) <= 2 for hits in results["full rerank top-2"].values())
    assert all(len(results["capped"][sq.query_id]) == len(sq.candidates) for sq in dev.scored)
    assert full["pairs_mean"] == capped["pairs_mean"] > 0
    assert full["fraction_scored"] == 1.0  # of the (at most) 2 it was given
    scored = sum(min(2, len(sq.candidates)) for sq in dev.scored)
    assert capped["fraction_scored"] == pytest.approx(scored / sum(len(sq.candidates) for sq in dev.scored))
    assert capped["fraction_scored"] < 1.0


def test_bench_counts_the_forward_passes_of_the_scored_prefix(tiny, fake_scorer, tmp_path):
    from earlyrank.engine.bench import rerank_rows

    dev = _dev(tiny, fake_scorer, tmp_path)[0]
    # Candidate i of every query costs i + 1 passes (as if later passages were longer and read in more windows).
    passes = {sq.query_id: np.arange(1, len(sq.candidates) + 1) for sq in dev.scored}
    configs = [("full rerank top-2", "full", FullRerank(depth=2, chunk=2)),
               ("full rerank top-3", "full", FullRerank(depth=3, chunk=3))]
    rows, _ = rerank_rows(dev, dev.qrels, Calibration(), 0.0, configs, 0.01, 1.0, tmp_path, passes)
    expect = [np.mean([sum(range(1, min(d, len(sq.candidates)) + 1)) for sq in dev.scored]) for d in (2, 3)]
    assert [r["passes_mean"] for r in rows] == pytest.approx(expect)
    assert rows[1]["passes_mean"] > rows[1]["pairs_mean"]
    plain, _ = rerank_rows(dev, dev.qrels, Calibration(), 0.0, configs, 0.01, 1.0, tmp_path)
    assert [r["passes_mean"] for r in plain] == [r["pairs_mean"] for r in plain]  # one pass a pair


def test_dev_is_the_data_sets_own_dev_split_when_it_has_one(tmp_path):
    """`bench --split dev` on a data set with qrels/dev.tsv and no train split failed with "no split 'train'":
    dev meant only the model's held-out part of train. With no train split, nothing was held out: its own dev."""
    from earlyrank.engine.datasets import Dataset
    from earlyrank.engine.model_files import DEFAULT_MODEL, ModelLoadError
    from earlyrank.engine.tuning import split_queries
    from earlyrank.indexes.corpus import DatasetError
    from earlyrank.indexes.types import Document, Query

    queries = {"a": Query("a", "first"), "b": Query("b", "second")}
    own = Dataset("own", [Document("d", "text")], queries, {"dev": {"a": {"d": 1}}, "test": {"b": {"d": 1}}})
    got, qrels = split_queries(own, "dev", DEFAULT_MODEL)
    assert [q.id for q in got] == ["a"] and qrels == {"a": {"d": 1}}
    # With a train split beside it, dev was the card's held-out part of train: --split dev then reported on train
    # questions and ignored dev.tsv. A data set's own dev split is dev, whatever else it has.
    both = Dataset("both", own.corpus, queries, {"dev": {"a": {"d": 1}}, "train": {"b": {"d": 1}}})
    assert [q.id for q in split_queries(both, "dev", tmp_path)[0]] == ["a"]
    trained = Dataset("trained", own.corpus, queries, {"train": {"b": {"d": 1}}, "test": {"a": {"d": 1}}})
    with pytest.raises(ModelLoadError, match="training_card"):  # dev is then the card's held-out part of train
        split_queries(trained, "dev", tmp_path)
    tested = Dataset("tested", own.corpus, queries, {"test": {"a": {"d": 1}}})
    with pytest.raises(DatasetError, match="no split 'dev' .qrels/dev.tsv., nor a train split .*available: test"):
        split_queries(tested, "dev", tmp_path)


def test_relevance_level_reaches_the_ece_labels_and_the_missing_judgements_count(tiny, fake_scorer, tmp_path):
    """Under --relevance-level 2 the table's measures counted grade >= 2, but its ECE line and its note on judged
    documents the corpus lacks still counted grade >= 1."""
    from earlyrank.engine.bench_record import relevant_missing

    dev = _dev(tiny, fake_scorer, tmp_path)[0]
    graded = {q: {d: 2 if i == 0 else 1 for i, d in enumerate(j)} for q, j in dev.qrels.items()}
    _, ones = labelled_pairs(dev.scored, graded)
    _, twos = labelled_pairs(dev.scored, graded, relevance_level=2)
    assert twos.sum() < ones.sum() and set(np.flatnonzero(twos)) <= set(np.flatnonzero(ones))
    qrels = {"q": {"gone": 1, "also-gone": 2, "here": 3, "unjudged-gone": 0}}
    assert (relevant_missing(qrels, {"here"}), relevant_missing(qrels, {"here"}, 2)) == (2, 1)


def test_cached_scores_are_not_reused_for_another_corpus_under_the_same_folder_name(tmp_path, fake_scorer,
                                                                                     monkeypatch):
    """The cache was named by the folder's name, split and depth: a corpus changed under the same name was reranked
    on the old candidates (0.9333 where a fresh cache gave 0.8551), or crashed when they were gone."""
    import shutil
    from types import SimpleNamespace

    from conftest import TINY

    from earlyrank.engine.model_files import DEFAULT_MODEL
    from earlyrank.engine.tuning import scored_split

    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path / "cache"))
    fake_scorer.max_length, fake_scorer.windows, fake_scorer.backend = 192, 1, SimpleNamespace(name="fake")
    for n, where in ((12, "a"), (11, "b")):
        data = tmp_path / where / "same-name"
        shutil.copytree(TINY, data)
        lines = (data / "corpus.jsonl").read_text().splitlines()[:n]
        (data / "corpus.jsonl").write_text("\n".join(lines) + "\n")
        scored = scored_split(data, "test", fake_scorer, DEFAULT_MODEL, "bm25", 20, progress=False)
        held = {json.loads(line)["_id"] for line in lines}
        assert all(h.doc_id in held for sq in scored.scored for h in sq.candidates)
    assert len(list((tmp_path / "cache" / "scores").rglob("same-name-*-test-bm25-20.jsonl"))) == 2
