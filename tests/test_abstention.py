"""No confident answer: the answer gate, through the pipeline, the API and the CLI (fake scorer, tiny index)."""

from __future__ import annotations

import dataclasses
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
GATE = AnswerGate.platt(Calibration(1.0, 0.0, "platt"), threshold=0.9)


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
        AnswerGate.platt(Calibration(), 1.5)


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


def test_risk_coverage_does_not_depend_on_the_order_of_tied_rows():
    """Tied confidences are answered in an unknown order, so each tied block counts at its mean correctness (the
    expected curve under a random order). A stable sort once counted them in input order, and the benchmarks list
    every answerable question before its unanswerable twin: a confidence with many ties (the recall score's RRF
    values) looked better than it was."""
    import numpy as np

    from earlyrank.engine.abstention_fit import risk_coverage

    right = np.array([1.0, 1.0, 0.0, 0.0])
    assert risk_coverage(np.full(4, 0.5), right)["aurc"] == pytest.approx(0.5)  # it was 0.208 (0.792 reversed)
    assert risk_coverage(np.full(4, 0.5), right[::-1])["aurc"] == pytest.approx(0.5)
    confidence = np.array([0.9, 0.5, 0.5, 0.1])
    both = [risk_coverage(confidence[p], np.array([1.0, 0.0, 1.0, 0.0])[p]) for p in ([0, 1, 2, 3], [0, 2, 1, 3])]
    assert both[0] == both[1]
    assert both[0]["aurc"] == pytest.approx(np.mean([0, 1 - 1.5 / 2, 1 - 2 / 3, 1 - 2 / 4]))


def test_tied_confidences_never_break_the_promised_precision():
    """The gate answers every question at or above the threshold, ties included: 0.5 would answer a wrong one."""
    import numpy as np

    from earlyrank.engine.abstention_fit import threshold_for_precision

    assert threshold_for_precision(np.array([0.9, 0.5, 0.5]), np.array([1.0, 1.0, 0.0]), 0.9) == 0.9


def test_a_threshold_of_one_answers_nothing():
    gate = AnswerGate.platt(Calibration(5.0, 0.0), 1.0)
    assert gate.answer_confidence(10.0) == 1.0 and gate.withholds(1.0)
    assert not AnswerGate.platt(Calibration(), 0.5).withholds(0.5)


# The multi-feature gate: its features by hand, the gate in Pipeline.ask, and the first gate's file still read.

def test_the_top_passages_features_by_hand():
    import numpy as np

    from earlyrank.engine.answer_features import ANSWER_FEATURES, answer_features, query_overlap
    from earlyrank.engine.fusion import CandidateSignals
    from earlyrank.engine.rerank import NO_CONTENT_LOGIT
    from earlyrank.indexes.types import Hit

    # Recall order a, b, c, d; the reranker put b first (logit 3.0), a second (1.0); c unscored; d contentless.
    ranked = [Hit("b", 0.9, 1, {"recall": 0.030, "recall_rank": 2, "logit": 3.0}),
              Hit("a", 0.7, 2, {"recall": 0.032, "recall_rank": 1, "logit": 1.0}),
              Hit("c", -1.0, 3, {"recall": 0.020, "recall_rank": 3}),
              Hit("d", -2.0, 4, {"recall": 0.010, "recall_rank": 4, "logit": NO_CONTENT_LOGIT})]
    signals = CandidateSignals(np.array([0.8, 0.6, 0.5, 0.1]), np.array([10.0, 5.0, 0.0, 2.0]),
                               np.array([1.0, 2.0, 3.0, 4.0]))
    features = dict(zip(ANSWER_FEATURES, answer_features(ranked, signals, 0.5), strict=True))
    assert features == pytest.approx({"top_logit": 3.0, "logit_margin": 2.0, "recall_score": 0.030,
                                      "recall_top1": 0.0, "cosine": 0.6, "cosine_gap": -0.2, "bm25_rel": 0.5,
                                      "query_overlap": 0.5})
    # The only other scored passage is contentless: no rival, so the margin is the fixed 0.0 (not 3 + 1e4).
    alone = answer_features([ranked[1], ranked[2], ranked[3]], signals, 0.0)
    assert alone is not None and alone[1] == 0.0 and alone[3] == 1.0  # a, recall's first, on top
    assert answer_features([ranked[2], ranked[0]], signals, 0.0) is None  # the top passage was not scored
    # content words what, capit(al), franc(e): two of the three are in the passage
    assert query_overlap("What is the capital of France?", "Paris. Paris is the capital of France.") == 2 / 3
    assert query_overlap("capital cities", "the capital") == 0.5
    assert query_overlap("Is it the?", "anything") == 0.0  # stop words only


class BagOfWordsDense:
    """Dense vectors without a model: stemmed content words hashed into 256 dimensions, normalized; the real
    `DenseIndex` (faiss, flat) behind them, its query vector made the same way."""

    @staticmethod
    def embed(text: str):
        import zlib

        import numpy as np

        from earlyrank.indexes.tokenize import Tokenizer

        v = np.zeros(256, dtype=np.float32)
        for word in Tokenizer()(text):
            v[zlib.crc32(word.encode()) % 256] += 1.0
        return v / max(float(np.linalg.norm(v)), 1e-9)

    @classmethod
    def index(cls, docs):
        import numpy as np

        from earlyrank.indexes.dense import DenseIndex, DenseParams

        class Dense(DenseIndex):
            def query_vector(self, query: str):
                return cls.embed(query)

        return Dense.from_vectors([d.id for d in docs], np.vstack([cls.embed(d.full_text) for d in docs]),
                                  DenseParams())


@pytest.fixture(scope="module")
def hybrid_index(tiny_index):
    return dataclasses.replace(tiny_index, dense=BagOfWordsDense.index(tiny_index.docs))


def features_gate(threshold: float) -> AnswerGate:
    """log-odds = top_logit + logit_margin + recall_top1 + 3 * query_overlap - 6 (the other weights 0)."""
    from earlyrank.engine.answer_features import ANSWER_FEATURES

    weights = {"top_logit": 1.0, "logit_margin": 1.0, "recall_top1": 1.0, "query_overlap": 3.0}
    return AnswerGate(tuple(weights.get(f, 0.0) for f in ANSWER_FEATURES), -6.0, threshold, ANSWER_FEATURES, "hybrid")


def test_the_multi_feature_gate_withholds_below_its_threshold_and_answers_above(hybrid_index):
    # FakeScorer on FRANCE, every candidate scored: d3 (Paris) logit 3, best rival d4 (Berlin) 2, so margin 1;
    # d3 is first in both recall lists (recall_top1 1); content words what/capit/franc, 2 in d3: overlap 2/3.
    # log-odds 3 + 1 + 1 + 2 - 6 = 1: answer confidence sigmoid(1) = 0.731059.
    answer = Pipeline(hybrid_index, FakeScorer(), mode="hybrid", answer_gate=features_gate(0.7)).ask(FRANCE)
    assert answer.answer is not None and answer.answer.id == "d3" and not answer.abstained
    assert answer.answer_confidence == pytest.approx(0.731059, abs=1e-6)
    withheld = Pipeline(hybrid_index, FakeScorer(), mode="hybrid", answer_gate=features_gate(0.75)).ask(FRANCE)
    assert withheld.abstained and withheld.answer_confidence == pytest.approx(0.731059, abs=1e-6)
    assert withheld.sentence is None and [h.doc_id for h in withheld.hits][:2] == ["d3", "d4"]


def test_the_multi_feature_gate_judges_only_the_recall_it_was_fitted_on(hybrid_index, tiny_index):
    gate = features_gate(0.99)  # would withhold d3's answer under hybrid recall
    for index in (hybrid_index, tiny_index):
        answer = Pipeline(index, FakeScorer(), mode="bm25", answer_gate=gate).ask(FRANCE)
        assert answer.answer_confidence is None and not answer.abstained and answer.answer.id == "d3"
    assert Pipeline(hybrid_index, FakeScorer(), mode="bm25", answer_gate=gate).ask(FRANCE, mode="hybrid").abstained


def test_a_first_format_gate_file_is_still_read_as_platt_scaling_of_the_top_logit(tmp_path, tiny_index):
    (tmp_path / ANSWER_GATE).write_text(
        '{"calibration": {"scale": 0.5, "bias": -1.0, "method": "platt"}, "threshold": 0.6}')
    gate = AnswerGate.load(tmp_path)
    assert gate is not None and gate.top_logit_only and gate.recall_mode is None
    assert gate.answer_confidence(4.0) == pytest.approx(0.731059, abs=1e-6)  # sigmoid(0.5 * 4 - 1)
    answer = Pipeline(tiny_index, FakeScorer(), mode="bm25", answer_gate=gate).ask(FRANCE)
    assert answer.answer_confidence == pytest.approx(0.622459, abs=1e-6) and not answer.abstained  # sigmoid(0.5)
    assert json.loads(json.dumps(gate.as_dict())) == json.loads((tmp_path / ANSWER_GATE).read_text())


def test_a_multi_feature_gate_round_trips_and_a_wrong_feature_list_is_refused(tmp_path):
    gate = features_gate(0.7)
    (tmp_path / ANSWER_GATE).write_text(json.dumps(gate.as_dict()))
    assert AnswerGate.load(tmp_path) == dataclasses.replace(gate, report={})
    data = {**gate.as_dict(), "features": ["top_logit", "cosine"], "weights": [1.0, 1.0]}
    (tmp_path / ANSWER_GATE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="answer_gate.json.*fit it again"):
        AnswerGate.load(tmp_path)


def test_the_aurc_gap_bound_tells_a_real_loss_from_a_tie():
    """Paired bootstrap over questions: a confidence that orders the answers backwards is significantly worse than
    one that orders them right; the same confidence against itself is not (its gap is 0 in every resample)."""
    import numpy as np

    from earlyrank.engine.abstention_fit import Outcomes, aurc_gap_lower_bound

    rng = np.random.default_rng(1)
    right = rng.integers(0, 2, 60).astype(float)
    o = Outcomes(np.zeros((60, 8)), right, np.ones(60, dtype=bool), np.asarray([f"q{i // 2}" for i in range(60)],
                                                                               dtype=object))
    good = right + rng.uniform(0, 0.5, 60)
    assert aurc_gap_lower_bound(1 - good, good, o) > 0.1
    assert aurc_gap_lower_bound(good, 1 - good, o) < 0
    assert aurc_gap_lower_bound(good, good, o) == 0.0
    from earlyrank.engine.abstention_fit import aurc_gap_interval

    low, high = aurc_gap_interval(good, 1 - good, o)  # significantly better: the whole interval below 0
    assert low < high < -0.1 and low == aurc_gap_lower_bound(good, 1 - good, o)
    assert aurc_gap_interval(good, good, o) == (0.0, 0.0)


@pytest.mark.parametrize(("xquad_gate", "xquad_worse", "adopted"), [
    (0.174, False, True),   # a little above the recall score on one set, within noise, better on the mean
    (0.174, True, False),   # significantly worse on one set
    (0.250, False, False),  # the mean no longer below the recall score's
])
def test_the_gate_is_judged_on_the_mean_and_by_significance_not_per_set_points(xquad_gate, xquad_worse, adopted):
    from earlyrank.engine.abstention_fit import gate_adopted

    sets = {"scifact": {"aurc_cross_validated": 0.399, "aurc_recall_score": 0.444, "significantly_worse": False},
            "xquad-en": {"aurc_cross_validated": xquad_gate, "aurc_recall_score": 0.170,
                         "significantly_worse": xquad_worse}}
    assert gate_adopted(sets) is adopted


def test_passage_qrels_judge_every_passage_of_a_judged_document():
    """On a split index a passage is relevant where its document is; a judged document the index lacks keeps
    its id, and unjudged documents' passages stay unjudged."""
    from types import SimpleNamespace

    from earlyrank.engine.corpora import passage_qrels
    from earlyrank.indexes.passage_table import PassageTable
    from earlyrank.indexes.types import Document

    docs = [Document("a", "one two three four", "", {}), Document("b", "five six", "", {})]
    table = PassageTable(docs, [[(0, 7), (4, 18)], [(0, 8)]])
    index = SimpleNamespace(docs=table.units, passages=table)
    assert passage_qrels({"q": {"a": 2, "gone": 1}, "r": {"b": 1}}, index) == {
        "q": {"a#p0": 2, "a#p1": 2, "gone": 1}, "r": {"b": 1}}


def test_one_questions_rows_in_two_sets_of_a_group_fall_in_one_fold():
    """Two sets asking the same questions (a data set over whole and split indexes): with one group name each
    question is held out of the same fit in both, so identical rows get identical cross-validated confidences;
    as separate groups their folds are drawn apart and the confidences differ."""
    import numpy as np

    from earlyrank.engine.abstention_fit import Outcomes, cross_validated

    rng = np.random.default_rng(3)
    n = 80
    right = rng.integers(0, 2, n).astype(float)
    features = rng.normal(size=(n, 8)) + right[:, None]
    o = Outcomes(features, right, np.ones(n, dtype=bool), np.asarray([f"q{i}" for i in range(n)], dtype=object))
    shared = cross_validated([o, o], groups=["x", "x"])
    assert np.allclose(shared[0], shared[1])
    apart = cross_validated([o, o], groups=["x", "y"])
    assert not np.allclose(apart[0], apart[1])
    assert np.allclose(cross_validated([o, o])[0], apart[0])  # the default: every set its own group


def test_whole_and_split_sets_each_choose_their_own_threshold():
    """With split flags the whole-passage sets choose `threshold` and the split ones `split_threshold`, each the
    lowest reaching the precision on its own sets' cross-validated confidences; without flags, one threshold
    over all the sets and none for split indexes."""
    import numpy as np

    from earlyrank.engine.abstention_fit import Outcomes, cross_validated, fit_answer_gate, threshold_for_precision

    rng = np.random.default_rng(5)

    def outcomes(shift: float) -> Outcomes:
        right = rng.integers(0, 2, 120).astype(float)
        features = rng.normal(size=(120, 8)) + right[:, None] * 1.5 + shift
        return Outcomes(features, right, np.ones(120, dtype=bool),
                        np.asarray([f"q{i}" for i in range(120)], dtype=object))

    whole, split = outcomes(0.0), outcomes(-1.0)
    gate = fit_answer_gate([whole, split], ["a", "a (split)"], "hybrid", 0.9, groups=["a", "a"], split=[False, True])
    held = cross_validated([whole, split], groups=["a", "a"])
    assert gate.threshold == threshold_for_precision(held[0], whole.right, 0.9)
    assert gate.split_threshold == threshold_for_precision(held[1], split.right, 0.9)
    assert gate.split_threshold != gate.threshold
    one = fit_answer_gate([whole, split], ["a", "a (split)"], "hybrid", 0.9, groups=["a", "a"])
    assert one.split_threshold is None
    assert one.threshold == threshold_for_precision(np.concatenate(held), np.concatenate([whole.right, split.right]),
                                                    0.9)


@pytest.mark.parametrize(("split_share", "whole_share", "whole_precision", "holds"), [
    (0.60, 0.66, 0.902, True),    # the sixth attempt's figures
    (0.445, 0.66, 0.902, False),  # split indexes answered no more than the current gate does
    (0.60, 0.57, 0.902, False),   # whole-passage more than 5 points below the current gate's 62.5%
    (0.60, 0.66, 0.887, False),   # the fifth attempt's whole-passage precision
])
def test_each_kind_of_index_must_keep_precision_and_split_indexes_must_gain(split_share, whole_share,
                                                                            whole_precision, holds):
    from earlyrank.engine.abstention_fit import kinds_hold

    new = {False: {"answerable_answered": whole_share, "precision": whole_precision},
           True: {"answerable_answered": split_share, "precision": 0.908}}
    current = {False: {"answerable_answered": 0.625, "precision": 0.918},
               True: {"answerable_answered": 0.445, "precision": 0.946}}
    assert kinds_hold(new, current) is holds
    assert kinds_hold(new, None) is (whole_precision >= 0.9)  # no gate to compare with: precision alone


def test_a_gate_needs_a_threshold_and_dev_sets_need_distinct_names():
    import numpy as np

    from earlyrank.engine.abstention_fit import Outcomes, fit_answer_gate

    with pytest.raises(ValueError, match="threshold"):
        AnswerGate((1.0,), 0.0, None)  # type: ignore[arg-type]
    o = Outcomes(np.zeros((4, 8)), np.array([1.0, 0.0, 1.0, 0.0]), np.ones(4, dtype=bool),
                 np.asarray(["a", "b", "c", "d"], dtype=object))
    with pytest.raises(ValueError, match="share a name"):
        fit_answer_gate([o, o], ["x", "x"], "hybrid")


def test_a_broken_gate_file_does_not_stop_fitting_a_new_one(tmp_path, capsys):
    """fit-abstention compares with the model's current gate; a gate file it cannot read (whose error says "fit
    it again") is reported and skipped, so the refit that repairs it can run."""
    from earlyrank.cli.fit_commands import current_gate

    (tmp_path / ANSWER_GATE).write_text('{"threshold": 2}')
    assert current_gate(tmp_path) is None
    assert "answer_gate.json" in capsys.readouterr().err
    assert current_gate(tmp_path / "none") is None  # no gate stored: nothing to compare with, no warning
    (tmp_path / ANSWER_GATE).write_text(json.dumps(features_gate(0.7).as_dict()))
    assert current_gate(tmp_path) == dataclasses.replace(features_gate(0.7), report={})


def test_ask_prints_the_answer_confidence_beside_the_passages_relevance(tiny_index, monkeypatch):
    """`earlyrank ask` names both probabilities: a user seeing only the passage's relevance (0.953 here, often far
    lower on a new corpus) next to an answer cannot tell what the gate judged."""
    from typer.testing import CliRunner

    from earlyrank.cli import app as cli

    gate = AnswerGate.platt(Calibration(1.0, -1.0, "platt"), threshold=0.5)  # answer confidence sigmoid(3 - 1)
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline",
                        lambda *a, **k: Pipeline(tiny_index, FakeScorer(), mode="bm25", answer_gate=gate))
    result = CliRunner().invoke(cli, ["ask", FRANCE, "--mode", "bm25"])
    assert result.exit_code == 0, result.output
    assert ("confidence 0.953 (that the passage is relevant); answer confidence 88.1% (that this passage answers "
            "the question)") in result.output


def test_ask_shows_the_threshold_an_answer_was_withheld_against(tiny_index, monkeypatch):
    """"answer confidence 70.0%, below the model's threshold" read as a contradiction when the threshold was
    0.7025 and the confidence 0.6998; both are printed, to two decimals."""
    from typer.testing import CliRunner

    from earlyrank.cli import app as cli

    gate = AnswerGate.platt(Calibration(1.0, -1.0, "platt"), threshold=0.885)  # answer confidence 88.08%
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline",
                        lambda *a, **k: Pipeline(tiny_index, FakeScorer(), mode="bm25", answer_gate=gate))
    result = CliRunner().invoke(cli, ["ask", FRANCE, "--mode", "bm25"])
    assert result.exit_code == 0, result.output
    assert "No confident answer (answer confidence 88.08%, below the model's threshold 88.50%)" in result.output
    answer = Pipeline(tiny_index, FakeScorer(), mode="bm25", answer_gate=gate).ask(FRANCE)
    assert answer.abstained and answer.answer_threshold == 0.885  # the threshold the pipeline applied
