"""Fine-tuning on a handful of hand-made groups: it learns, checkpoints, resumes, and refuses other parameters."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.training import TrainParams, train
from earlyrank.engine.training_data import DevCandidates, Group
from earlyrank.indexes.dense import default_model_path

pytestmark = pytest.mark.slow

CAT = "Cats hunt mice at night and sleep through the day."
OTHERS = ("The Eiffel Tower is in Paris.", "Rain falls from clouds.", "Bread is baked in an oven.")


def groups() -> list[Group]:
    questions = ["What do cats hunt?", "When do cats sleep?", "Which animal hunts mice?", "What hunts at night?"]
    return [Group(q, CAT, OTHERS, "hand") for q in questions]


def dev() -> DevCandidates:
    candidates = [("cat", CAT)] + [(f"o{i}", t) for i, t in enumerate(OTHERS)]
    return DevCandidates([("d1", "Do cats hunt mice?", candidates)], {"d1": {"cat": 1}})


def test_train_checkpoints_resumes_and_refuses_other_parameters(tmp_path):
    out = tmp_path / "model"
    # 4 groups x 3 epochs / 2 per batch / accumulation 2 = 3 optimizer steps; stop after 2 first.
    params = TrainParams(max_length=32, negatives=3, epochs=3, eval_every=1, max_steps=2, dev_queries=1,
                         base_model=str(default_model_path()), lr_body=1e-4, seed=1)
    first = train(groups(), dev(), out, params, progress=False)
    assert first["steps"] == 2 and first["total_steps"] == 3
    assert (tmp_path / ".model.checkpoint" / "checkpoint-2" / "trainer_state.json").is_file()
    # A changed stopping limit is a resume; the run continues from step 2 to the end of the schedule.
    second = train(groups(), dev(), out, replace(params, max_steps=0), progress=False)
    assert second["steps"] == 3 and [h["step"] for h in second["history"]] == [1, 2, 3]
    # The trainer's checkpoint holds weights, optimizer, schedule, RNG and data position: the resumed run ends where
    # an uninterrupted one does, step for step.
    whole = train(groups(), dev(), tmp_path / "whole", replace(params, max_steps=0), progress=False)
    assert [h["loss"] for h in second["history"]] == pytest.approx([h["loss"] for h in whole["history"]], rel=1e-4)
    assert second["kept"] == whole["kept"] == {"step": 1, "dev_ndcg@10": 1.0}  # the first of equal dev scores
    assert json.loads((out / "training_card.json").read_text())["steps"] == 3
    # The saved model is the best on dev, and loads as a cross-encoder that ranks the cat passage first.
    scorer = CrossEncoder.load(out)
    logits = scorer.logits(["Do cats hunt mice?"] * 4, [CAT, *OTHERS])
    assert logits.argmax() == 0
    with pytest.raises(ValueError, match="other parameters"):
        train(groups(), dev(), out, replace(params, lr_body=2e-4), progress=False)
    # The same options on other groups (adapt into an --out last used for another corpus) are not a resume.
    other = [Group(q, CAT, OTHERS, "hand") for q in ("Where do cats sleep?", "What do mice fear?")]
    with pytest.raises(ValueError, match="other training data"):
        train(groups()[:2] + other, dev(), out, replace(params, max_steps=0), progress=False)


def test_second_stage_starts_from_a_shipped_fp16_model(tmp_path):
    first = tmp_path / "first"
    params = TrainParams(max_length=32, negatives=3, epochs=1, eval_every=1, dev_queries=1,
                         base_model=str(default_model_path()), lr_body=1e-4, seed=1)
    train(groups(), dev(), first, params, progress=False)
    start = CrossEncoder.load(first).logits(["Do cats hunt mice?"] * 4, [CAT, *OTHERS])
    # The first stage is stored in fp16; the second stage must train it in fp32 from those weights.
    second = tmp_path / "second"
    card = train(groups(), dev(), second, replace(params, base_model=str(first), epochs=2), progress=False)
    assert card["base_model"] == str(first) and card["steps"] == 2
    assert card["previous_stage"]["steps"] == 1 and card["previous_stage"]["base_model"] == str(default_model_path())
    after = CrossEncoder.load(second).logits(["Do cats hunt mice?"] * 4, [CAT, *OTHERS])
    assert after.argmax() == 0
    # It continued from the first stage's weights: the cat passage's lead over the others did not shrink.
    assert after[0] - after[1:].max() >= start[0] - start[1:].max()
