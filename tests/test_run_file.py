"""External first-stage runs (TREC format) and graded, TREC-style scoring in the suite."""

from __future__ import annotations

import pytest

from earlyrank.engine.suite import measures, metrics
from earlyrank.indexes.run_file import RunFileError, RunRetriever, read_run


def test_a_run_is_read_in_rank_order_and_served_by_query_text(tmp_path):
    path = tmp_path / "bm25.trec"
    path.write_text("q1 Q0 b 2 9.0 BM25\nq1 Q0 a 1 10.0 BM25\n\nq2 Q0 c 1 3.5 BM25\n")
    run = read_run(path)
    assert run == {"q1": [("a", 10.0), ("b", 9.0)], "q2": [("c", 3.5)]}
    retriever = RunRetriever(run, {"first question": "q1", "second": "q2"})
    hits = retriever.search("first question", 1)
    assert [(h.doc_id, h.rank, h.score) for h in hits] == [("a", 1, 10.0)]
    assert retriever.search("not in the run", 5) == []


@pytest.mark.parametrize("line, message", [
    ("q1 Q0 a 1 10.0", r"bad\.trec:2: expected 6 columns"),
    ("q1 Q0 a first 10.0 BM25", r"bad\.trec:2: rank 'first' must be an integer"),
])
def test_a_bad_line_is_refused_with_its_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.trec"
    path.write_text(f"q1 Q0 b 2 9.0 BM25\n{line}\n")
    with pytest.raises(RunFileError, match=message):
        read_run(path)
    with pytest.raises(RunFileError, match="no such run file"):
        read_run(tmp_path / "missing.trec")


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
