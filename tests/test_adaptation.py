"""`earlyrank adapt`: label-free adaptation to a corpus, its checks, and (slow) a real run on a small corpus."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from earlyrank.cli import app
from earlyrank.engine.adaptation import ADAPTATION, AdaptParams, adapt
from earlyrank.engine.model_files import ANSWER_GATE, CALIBRATION, DEFAULT_MODEL, INFERENCE, OPERATING_POINT
from earlyrank.indexes.store import build_index
from earlyrank.indexes.types import Document

runner = CliRunner()
TOPICS = ("glaciers", "volcanoes", "rivers", "deserts", "forests", "oceans", "caves", "islands")


def corpus() -> list[Document]:
    """Sixteen passages of three sentences each, two per topic, with topic words to tell them apart."""
    docs = []
    for topic in TOPICS:
        for part in range(2):
            text = " ".join(f"Sentence {s} of part {part} explains how {topic} change over long periods of time "
                            f"and why {topic} matter {s}." for s in range(3))
            docs.append(Document(f"{topic}-{part}", text))
    return docs


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"distill": -1}, "distill must be >= 0"),
    ({"distill": 0, "sentence": 0}, "nothing to train on"),
    ({"held_out": 5}, "at least 10 held-out groups"),
])
def test_adapt_params_refuse_what_cannot_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptParams(**kwargs)
    assert AdaptParams(held_out=0, recalibrate=False).held_out == 0


def test_the_held_out_set_is_at_most_a_fifth_of_the_corpus():
    from earlyrank.engine.adaptation import held_out_size

    assert [held_out_size(200, n) for n in (5000, 1000, 54, 16)] == [200, 200, 10, 10]
    assert held_out_size(30, 400) == 30  # never more than asked


def test_adapt_refuses_a_missing_index_and_its_own_base_as_output(tmp_path):
    result = runner.invoke(app, ["adapt", "--index", str(tmp_path / "nope"), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "nope" in result.output
    result = runner.invoke(app, ["adapt", "--index", str(tmp_path), "--out", str(DEFAULT_MODEL)])
    assert result.exit_code == 2 and "somewhere else" in result.output


def test_adapt_needs_a_dense_part(tmp_path):
    index = build_index(corpus(), tmp_path / "idx", dense=False, progress=False)
    result = runner.invoke(app, ["adapt", "--index", str(index), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "hybrid mode needs both parts" in result.output


@pytest.mark.slow
def test_adapt_trains_on_the_corpus_and_refits_calibration(tmp_path):
    index = build_index(corpus(), tmp_path / "idx", progress=False)
    out = tmp_path / "adapted"
    # The default 200 held-out groups would keep all 16 passages out of training: a fifth (at least 10) is held.
    params = AdaptParams(distill=4, sentence=4, negatives=3, depth=16, max_length=48, seed=3)
    record = adapt(index, DEFAULT_MODEL, out, params, progress=False)
    assert record["steps"] >= 1
    assert set(record["groups"]) == {"idx:distill", "idx:sentence"}
    for name in (INFERENCE, OPERATING_POINT, CALIBRATION, ADAPTATION, "model.safetensors"):
        assert (out / name).is_file()
    fitted = record["calibration"]
    assert fitted["pairs"] == 40 and fitted["pseudo_ece_after"] <= fitted["pseudo_ece_before"] + 1e-9
    assert json.loads((out / CALIBRATION).read_text())["scale"] == pytest.approx(fitted["fitted"]["scale"])
    assert json.loads((out / ADAPTATION).read_text())["base_model"] == str(DEFAULT_MODEL)
    assert not (out / ANSWER_GATE).exists()  # fitted to the base model's scores: not carried over


@pytest.mark.slow
def test_adapt_says_the_answer_gate_is_not_carried_over(tmp_path):
    import shutil

    index = build_index(corpus(), tmp_path / "idx", progress=False)
    base = tmp_path / "base"  # the bundled model with a gate of the first format beside it
    shutil.copytree(DEFAULT_MODEL, base)
    (base / ANSWER_GATE).write_text('{"calibration": {"scale": 0.5, "bias": -1.0, "method": "platt"}, '
                                    '"threshold": 0.6}')
    options = ["--distill", "2", "--sentence", "2", "--max-minutes", "0.2", "--no-recalibrate"]
    result = runner.invoke(app, ["adapt", "--index", str(index), "--model", str(base), "--out", str(tmp_path / "m"),
                                 *options])
    assert result.exit_code == 0, result.output
    assert "answer gate is not carried over" in result.output
    (base / ANSWER_GATE).unlink()  # no gate: nothing to say
    result = runner.invoke(app, ["adapt", "--index", str(index), "--model", str(base), "--out", str(tmp_path / "n"),
                                 *options])
    assert result.exit_code == 0, result.output
    assert "answer gate" not in result.output


def test_ctrl_c_during_adapt_says_how_to_resume(tmp_path, monkeypatch):
    """Ctrl+C printed nothing and left the user guessing whether anything was kept."""
    def interrupted_at_step_6(*args, **kwargs):
        (tmp_path / ".m.checkpoint" / "checkpoint-6").mkdir(parents=True)
        (tmp_path / ".m.checkpoint" / "checkpoint-6" / "trainer_state.json").write_text("{}")
        (tmp_path / ".m.checkpoint" / "checkpoint-8").mkdir()  # stopped while saving: no trainer_state.json
        raise KeyboardInterrupt

    monkeypatch.setattr("earlyrank.engine.adaptation.adapt", interrupted_at_step_6)
    result = runner.invoke(app, ["adapt", "--index", str(tmp_path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 130
    assert "run the same command again to continue from checkpoint-6" in result.output


def test_adapt_says_when_it_could_not_refit_the_calibration(tmp_path, monkeypatch):
    """A corpus with no sentence fit for a held-out group kept the base calibration without a word."""
    import earlyrank.engine.adaptation as adaptation
    import earlyrank.engine.distillation as distillation
    import earlyrank.engine.training as training
    import earlyrank.engine.training_data as training_data
    from earlyrank.engine.training_data import Group

    index = build_index(corpus(), tmp_path / "idx", dense=False, progress=False)
    monkeypatch.setattr("earlyrank.indexes.store.LoadedIndex.retriever", lambda self, mode: None)
    monkeypatch.setattr(training_data, "sentence_groups", lambda *a, **k: [])
    monkeypatch.setattr(distillation, "distill_groups", lambda *a, **k: [Group("q", "p", ("n",), "idx:distill")])
    monkeypatch.setattr(training, "train", lambda *a, **k: {"groups_by_source": {"idx:distill": 1}, "steps": 1,
                                                            "minutes": 0.1})
    (tmp_path / "m").mkdir()  # what train would have written the model into
    record = adaptation.adapt(index, DEFAULT_MODEL, tmp_path / "m", AdaptParams(), progress=False)
    assert "calibration" not in record and "base model's calibration was kept" in record["calibration_skipped"]
