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
