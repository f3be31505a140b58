"""The paired t-test behind the benches' and the lengths comparison's p values."""

from __future__ import annotations

import math

import pytest

from earlyrank.engine.evaluation import paired_test
from tests.conftest import load_program


def test_paired_test_matches_the_textbook_statistic():
    a = {"q1": 0.0, "q2": 0.5, "q3": 1.0, "q4": 0.2}
    b = {"q4": 0.6, "q3": 1.0, "q2": 0.9, "q1": 0.5, "extra": 0.0}  # order and extra queries do not matter
    result = paired_test(a, b)
    diffs = [0.5, 0.4, 0.0, 0.4]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    t = mean / (sd / 2)
    assert result["mean_diff"] == pytest.approx(mean)
    u = t / math.sqrt(3)  # Student's t with 3 degrees of freedom has a closed-form distribution function
    cdf = 0.5 + (u / (1 + u * u) + math.atan(u)) / math.pi
    assert result["p_value"] == pytest.approx(2 * (1 - cdf))


def test_paired_test_refuses_a_run_missing_queries():
    with pytest.raises(ValueError, match="q2"):
        paired_test({"q1": 1.0, "q2": 0.0}, {"q1": 1.0})


def test_lengths_compares_the_settings_both_models_measured():
    lengths = load_program("benchmarks/lengths.py")
    rows = {"scifact": {"per_query_ndcg": {"a": 0.2, "b": 0.4, "c": 0.1}}}
    better = {"scifact": {"per_query_ndcg": {"a": 0.6, "b": 0.5, "c": 0.4}}}
    reference = {"lengths": {"192": rows, "192x2": rows}}
    record = {"lengths": {"192x2": better, "256": better}}
    out = lengths.compare(reference, record)
    assert list(out) == ["192x2"]
    assert out["192x2"]["scifact"]["mean_diff"] == pytest.approx(0.8 / 3)


def test_the_relevance_level_applies_to_every_binary_measure_and_to_no_graded_one():
    """Only names with "@" were given the level: AP, RR and Rprec kept grade 1 (AP 1.0 where 0.5 is right)."""
    from earlyrank.engine.evaluation import evaluate_run

    qrels = {"q": {"a": 1, "b": 2}}
    run = {"q": {"a": 2.0, "b": 1.0}}
    strict = evaluate_run(qrels, run, ("AP", "RR", "Rprec", "P@1", "nDCG@10"), relevance_level=2)
    assert strict == {"AP": 0.5, "RR": 0.5, "Rprec": 0.0, "P@1": 0.0,
                      "nDCG@10": evaluate_run(qrels, run, ("nDCG@10",))["nDCG@10"]}
    assert evaluate_run(qrels, run, ("AP",))["AP"] == 1.0
