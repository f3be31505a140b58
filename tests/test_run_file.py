"""External first-stage runs (TREC format) and graded, TREC-style scoring in the suite."""

from __future__ import annotations

import dataclasses

import pytest

from earlyrank.engine.suite import measures, metrics
from earlyrank.indexes.run_file import RunFileError, RunRetriever, read_run


def test_a_run_is_read_in_rank_order_and_served_by_query_id(tmp_path):
    """Served by the query's id: it was by the query's text, so two queries with one text both got the last
    one's list and bench --run scored one of them against the wrong candidates."""
    path = tmp_path / "bm25.trec"
    path.write_text("q1 Q0 b 2 9.0 BM25\nq1 Q0 a 1 10.0 BM25\n\nq2 Q0 c 1 3.5 BM25\n")
    run = read_run(path)
    assert run == {"q1": [("a", 10.0), ("b", 9.0)], "q2": [("c", 3.5)]}
    retriever = RunRetriever(run)
    hits = retriever.search("q1", 1)
    assert [(h.doc_id, h.rank, h.score) for h in hits] == [("a", 1, 10.0)]
    assert [h.doc_id for h in retriever.search("q2", 5)] == ["c"]
    assert retriever.search("q3", 5) == []
    retriever.check_passages({"a", "b", "c"})
    with pytest.raises(RunFileError, match="query 'q2' ranks passage 'c', which the corpus does not hold"):
        retriever.check_passages({"a", "b"}, path)
    retriever.check_passages({"a", "b"}, path, {"q1"})  # only the queries reranked must be in the corpus


@pytest.mark.parametrize("line, message", [
    ("q1 Q0 a 1 10.0", r"bad\.trec:2: expected 6 columns"),
    ("q1 Q0 a first 10.0 BM25", r"bad\.trec:2: rank 'first' must be an integer"),
    ("q1 Q0 a 3 nan BM25", r"bad\.trec:2: score 'nan' must be a finite number"),
    ("q1 Q0 b 3 8.0 BM25", r"bad\.trec:2: query 'q1' lists passage 'b' again \(first at line 1\)"),
])
def test_a_bad_line_is_refused_with_its_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.trec"
    path.write_text(f"q1 Q0 b 2 9.0 BM25\n{line}\n")
    with pytest.raises(RunFileError, match=message):
        read_run(path)
    with pytest.raises(RunFileError, match="no such run file"):
        read_run(tmp_path / "missing.trec")
    (tmp_path / "empty.trec").write_text("\n")
    with pytest.raises(RunFileError, match="no run lines"):
        read_run(tmp_path / "empty.trec")


def test_graded_measures_by_hand():
    """nDCG@10 uses the grades (linear gain, as trec_eval); RR and P@1 count grade >= 2 at level 2; a judged
    passage missing from the run (and the corpus) still counts in the ideal ranking."""
    qrels = {"q": {"a": 1, "b": 3, "gone": 3}}
    run = {"q": {"a": 2.0, "b": 1.0}}  # a (grade 1) first, then b (grade 3)
    got = metrics(qrels, run, level=2)
    dcg = 1 / 1 + 3 / __import__("math").log2(3)
    ideal = 3 + 3 / __import__("math").log2(3) + 1 / 2
    assert got["nDCG@10"] == pytest.approx(dcg / ideal)
    assert got["RR@10"] == pytest.approx(0.5) and got["P@1"] == 0.0  # a is only grade 1
    assert metrics(qrels, run, level=1)["P@1"] == 1.0
    assert measures(2)["RR@10"] == "RR(rel=2)@10" and measures(1)["RR@10"] == "RR@10"


def test_a_run_is_ordered_by_score_as_trec_eval_orders_it_and_a_bom_is_not_an_id(tmp_path):
    path = tmp_path / "run.trec"
    path.write_bytes("\ufeffq1 Q0 b 1 1.0 x\nq1 Q0 a 2 9.0 x\n".encode())
    assert read_run(path) == {"q1": [("a", 9.0), ("b", 1.0)]}
    path.write_bytes(b"q1 Q0 \xff 1 1.0 x\n")
    with pytest.raises(RunFileError, match=r"run\.trec: not UTF-8"):
        read_run(path)


def test_two_queries_with_one_text_are_scored_on_their_own_run_lists(tmp_path):
    from conftest import TINY, FakeScorer

    from earlyrank.engine.datasets import load_corpus
    from earlyrank.engine.offline import cache_line, score_split
    from earlyrank.indexes.store import build_index, load_index
    from earlyrank.indexes.types import Query

    index = load_index(build_index(load_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", dense=False,
                                   progress=False))
    path = tmp_path / "run.trec"
    path.write_text("qa Q0 d1 1 2.0 r\nqa Q0 d2 2 1.0 r\nqb Q0 d3 1 2.0 r\nqb Q0 d4 2 1.0 r\n")
    same = "What is the capital of France?"
    scored = score_split([Query("qa", same), Query("qb", same)], index, FakeScorer(), "run-run", 10,
                         tmp_path / "cache.jsonl", progress=False, run=RunRetriever(read_run(path)))
    assert {s.query_id: [h.doc_id for h in s.candidates] for s in scored} == {"qa": ["d1", "d2"],
                                                                              "qb": ["d3", "d4"]}
    # A cache written when lists were matched by text (qa scored on qb's list) is not served again.
    cache = tmp_path / "old.jsonl"
    old = [dataclasses.replace(scored[1], query_id="qa"), scored[1]]
    cache.write_text("".join(cache_line(s) for s in old))
    scorer = FakeScorer()
    again = score_split([Query("qa", same), Query("qb", same)], index, scorer, "run-run", 10, cache,
                        progress=False, run=RunRetriever(read_run(path)))
    assert [h.doc_id for h in again[0].candidates] == ["d1", "d2"] and len(scorer.batches) == 1  # qa only


def test_a_run_whose_query_ids_match_none_of_the_splits_is_refused_by_name():
    """Query ids prefixed "q" (or the passage id in the first column) gave "chunk and depth must be positive,
    got chunk=16, depth=0"."""
    retriever = RunRetriever({"q264014": [("p1", 1.0)], "q1110": [("p2", 1.0)]})
    with pytest.raises(RunFileError, match=r"none of its 2 query ids \(e.g. 'q264014'\) is a query of this split "
                                           r"\(e.g. '264014'\); its first column must be the query's id"):
        retriever.check_queries(["264014", "1110"], "run.trec")
    RunRetriever({"264014": [("p1", 1.0)]}).check_queries(["264014", "1110"], "run.trec")  # one is enough


def test_what_a_run_leaves_out_or_adds_is_said():
    retriever = RunRetriever({"a": [("p", 1.0)], "z": [("p", 1.0)], "y": [("p", 1.0)]})
    notes = retriever.coverage_notes(["a", "b", "c"], "run.trec")
    assert notes == ["run.trec: lists no passage for 2 of the 3 queries (e.g. 'b'); they score 0, as trec_eval -c "
                     "scores them",
                     "run.trec: 2 of its query ids are not queries of this split (e.g. 'z'); their lists were not "
                     "scored"]
    assert RunRetriever({"a": [("p", 1.0)]}).coverage_notes(["a"]) == []


def test_tied_scores_are_ordered_as_trec_eval_orders_them(tmp_path):
    """Ties were broken by the rank column, while trec_eval (pytrec_eval, which ir-measures uses for RR without a
    cutoff, AP, P and nDCG) breaks them by document id, the greater first: a run of equal scores scored 0.3715 here
    and 0.3139 under trec_eval. (ir-measures' RR@10 goes to its msmarco provider, which breaks ties the other way.)"""
    import ir_measures

    path = tmp_path / "tied.trec"
    path.write_text("q1 Q0 a 1 1.0 x\nq1 Q0 c 2 1.0 x\nq1 Q0 ab 3 1.0 x\nq1 Q0 z 4 5.0 x\n")
    assert [d for d, _ in read_run(path)["q1"]] == ["z", "c", "ab", "a"]
    given = {"q1": {d: float(-r) for r, (d, _) in enumerate(read_run(path)["q1"])}}  # as the suite scores it
    for relevant, rank in (("ab", 3), ("c", 2), ("a", 4)):
        qrels = {"q1": {relevant: 1}}
        theirs = ir_measures.calc_aggregate([ir_measures.RR], qrels, {"q1": {"a": 1.0, "c": 1.0, "ab": 1.0,
                                                                            "z": 5.0}})
        assert ir_measures.calc_aggregate([ir_measures.RR], qrels, given) == theirs == {ir_measures.RR: 1 / rank}
