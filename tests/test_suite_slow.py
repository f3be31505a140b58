"""The benchmark suite end to end on the tiny data set, with the real models, a fitted fusion and a run file."""

from __future__ import annotations

import json
import shutil

import pytest

from earlyrank.engine.fusion import Fusion
from earlyrank.engine.model_files import DEFAULT_MODEL, FUSION
from earlyrank.engine.suite import SuiteSet, run_suite

pytestmark = pytest.mark.slow


@pytest.fixture
def model_with_fusion(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model, ignore=shutil.ignore_patterns("onnx", FUSION))
    fusion = Fusion((1.0, 2.0, 0.5, 1.0, 0.5), -3.0, 8.0)
    (model / FUSION).write_text(json.dumps({"fusion": fusion.as_dict(), "stopping": {"k": 1, "margin": 0.0,
                                                                                      "first_chunk": 2}}))
    return model


def test_the_suite_scores_every_configuration_and_records_how(tiny_dir, tmp_path, model_with_fusion, monkeypatch):
    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "sets" / "tiny"
    shutil.copytree(tiny_dir, data)
    (data / "bm25.trec").write_text("q1 Q0 d1 1 3.0 x\nq1 Q0 d3 2 2.0 x\nq2 Q0 d1 1 5.0 x\n")
    record = run_suite(data.parent, model_with_fusion, tmp_path / "out",
                       sets=(SuiteSet("tiny", depth=5, run="bm25.trec"),))
    (tiny,) = record["sets"]
    rows = {(r["config"], r["candidates"]): r for r in tiny["rows"]}
    assert {"recall: bm25", "recall: dense", "recall: hybrid", "recall: bm25 (given run)"} <= {c for c, _ in rows}
    for candidates in ("bm25 top-5", "hybrid top-5"):
        for config in ("rerank: shipped blend, full", "rerank: shipped operating point",
                       "rerank: cross-encoder alone, full", "dense cosine alone (no model call)", "fusion: full",
                       "fusion: operating point"):
            row = rows[(config, candidates)]
            assert 0.0 <= row["nDCG@10"] <= 1.0 and "p_value" in row["vs_best_recall"]
    full, point = rows[("fusion: full", "hybrid top-5")], rows[("fusion: operating point", "hybrid top-5")]
    assert point["pairs_mean"] <= full["pairs_mean"] == 5.0
    assert 0.0 <= full["ece"] <= 1.0
    # the run lists 2 passages for q1, 1 for q2 and none for the third judged query: every one is scored
    assert rows[("rerank: shipped blend, full", "bm25 top-5")]["pairs_mean"] == pytest.approx((2 + 1 + 0) / 3)
    assert record["git_commit"] and record["machine"]["cores"] and record["default"] == "fusion: operating point"
    table = (tmp_path / "out" / "suite.md").read_text()
    assert table.count("| tiny |") == len(tiny["rows"])
    assert "tiny: bm25.trec: lists no passage for 1 of the 3 queries (e.g. 'q3')" in table


def test_a_run_reranked_to_a_shallow_depth_keeps_the_rest_of_its_list(tiny_dir, tmp_path, monkeypatch):
    """`bench --run --depth 2` scored the reranked top 2 as the whole list: q2's relevant d10, ranked 3rd by the
    run, was dropped, so the rerank lost to the very run it reranked. It now follows the reranked part."""
    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "sets" / "tiny"
    shutil.copytree(tiny_dir, data)
    lines = [f"{q} Q0 {d} {r} {10 - r} x" for q, docs in (("q1", "d7 d3 d2"), ("q2", "d1 d4 d10"), ("q3", "d5 d6"))
             for r, d in enumerate(docs.split(), 1)]
    (data / "run.trec").write_text("\n".join(lines) + "\n")
    record = run_suite(data.parent, DEFAULT_MODEL, tmp_path / "out", sets=(SuiteSet("tiny", depth=2, run="run.trec"),),
                       sources=("run",), stem="shallow", write_runs=True)
    rows = {r["config"]: r for r in record["sets"][0]["rows"]}
    full = rows["rerank: cross-encoder alone, full"]
    assert full["pairs_mean"] == 2.0
    # q2 judges d1 and d10 relevant. Cut at 2, its list could reach nDCG@10 1 / (1 + 1/log2 3) = 0.613 at best; with
    # d10 kept at rank 3 it is 0.693 at worst (d4, d1, d10) and 0.920 at best (d1, d4, d10).
    assert 0.69 < full["per_query"]["q2"] <= 0.92
    assert "p_value" in full["vs_candidates"]
    # the run file written holds the whole list, so trec_eval can check every figure
    written = (tmp_path / "out" / "shallow-runs" / "tiny-run_top-2-rerank__cross-encoder_alone__full.trec")
    assert [line.split()[2] for line in written.read_text().splitlines() if line.startswith("q2 ")][2] == "d10"
    table = (tmp_path / "out" / "shallow.md").read_text()
    assert "Δ vs candidates (p)" in table
