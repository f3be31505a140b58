"""No confident answer: the answer gate, through the pipeline, the API and the CLI (fake scorer, tiny index)."""

from __future__ import annotations

import json

import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import FRANCE, build_tiny_index, make_app

from earlyrank.engine.abstention import AnswerGate
from earlyrank.engine.calibration import Calibration
from earlyrank.engine.model_files import ANSWER_GATE
from earlyrank.engine.pipeline import Pipeline

# FakeScorer: logit = query words in the passage - 2. For FRANCE the top passage (d3, Paris) has logit 3.
GATE = AnswerGate(Calibration(1.0, 0.0, "platt"), threshold=0.9)


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    return build_tiny_index(tmp_path_factory.mktemp("abstain"))


def test_a_confident_answer_is_given_with_its_answer_confidence(tiny_index):
    answer = Pipeline(tiny_index, FakeScorer(), mode="bm25", answer_gate=GATE).ask(FRANCE)
    assert answer.answer is not None and answer.answer.id == "d3" and not answer.abstained
    assert answer.answer_confidence == pytest.approx(0.952574, abs=1e-6)  # sigmoid(3) >= 0.9


def test_below_the_threshold_the_api_withholds_the_answer_but_lists_the_candidates(tiny_index):
    scorer = FakeScorer({"Paris": -1.0, "Berlin": -1.5})  # every candidate weak: sigmoid(-1) = 0.27
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25", answer_gate=GATE)))
    body = client.post("/v1/answer", json={"query": FRANCE}).json()
    assert body["answer"] is None and body["answer_sentence"] is None
    assert body["reason"] == "no_confident_answer"
    assert body["answer_confidence"] == pytest.approx(0.268941, abs=1e-6)
    assert [h["doc_id"] for h in body["hits"]] == ["d3", "d4"]


def test_without_a_gate_nothing_changes(tiny_index):
    client = TestClient(make_app(Pipeline(tiny_index, FakeScorer({"Paris": -1.0}), mode="bm25")))
    body = client.post("/v1/answer", json={"query": FRANCE}).json()
    assert body["answer"] is not None and body["answer_confidence"] is None
    assert body["reason"] != "no_confident_answer"


def test_a_gate_is_stored_with_the_model_and_refused_when_broken(tmp_path):
    (tmp_path / ANSWER_GATE).write_text(json.dumps(GATE.as_dict()))
    assert AnswerGate.load(tmp_path) == GATE
    assert AnswerGate.load(tmp_path / "elsewhere") is None
    (tmp_path / ANSWER_GATE).write_text('{"threshold": 2}')
    with pytest.raises(ValueError, match="answer_gate.json.*fit it again"):
        AnswerGate.load(tmp_path)
    with pytest.raises(ValueError, match="probability"):
        AnswerGate(Calibration(), 1.5)


def test_twins_thresholds_and_risk_coverage_by_hand():
    import numpy as np

    from earlyrank.engine.abstention_fit import risk_coverage, threshold_for_precision, twin
    from earlyrank.engine.offline import ScoredQuery
    from earlyrank.indexes.types import Hit

    sq = ScoredQuery("q", "text", [Hit("a", 3.0, 1), Hit("b", 2.0, 2), Hit("c", 1.0, 3)], np.array([5.0, 1.0, 0.5]),
                     0.1)
    t = twin(sq, {"a": 1, "c": 0})
    assert t.query_id == "q#unanswerable" and [(h.doc_id, h.rank) for h in t.candidates] == [("b", 1), ("c", 2)]
    assert t.logits.tolist() == [1.0, 0.5]
    confidence = np.array([0.9, 0.8, 0.7, 0.6])
    right = np.array([1.0, 1.0, 0.0, 1.0])
    # answering the top 2 is 100% right, the top 3 67%, all four 75%: for 0.75 the lowest threshold is 0.6
    assert threshold_for_precision(confidence, right, 0.75) == 0.6
    assert threshold_for_precision(confidence, right, 0.9) == 0.8
    assert threshold_for_precision(confidence, np.zeros(4), 0.5) == 1.0  # nothing reaches it: answer nothing
    r = risk_coverage(confidence, right)
    assert r["aurc"] == pytest.approx(np.mean([0, 0, 1 / 3, 1 / 4]))
    assert r["accuracy_at_80"] == pytest.approx(0.75) and r["accuracy_at_90"] == pytest.approx(0.75)


def test_tied_confidences_never_break_the_promised_precision():
    """The gate answers every question at or above the threshold, ties included: 0.5 would answer a wrong one."""
    import numpy as np

    from earlyrank.engine.abstention_fit import threshold_for_precision

    assert threshold_for_precision(np.array([0.9, 0.5, 0.5]), np.array([1.0, 1.0, 0.0]), 0.9) == 0.9


def test_a_threshold_of_one_answers_nothing():
    gate = AnswerGate(Calibration(5.0, 0.0), 1.0)
    assert gate.answer_confidence(10.0) == 1.0 and gate.withholds(1.0)
    assert not AnswerGate(Calibration(), 0.5).withholds(0.5)
