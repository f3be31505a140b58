"""What `earlyrank train` hands to sentence-transformers' CrossEncoderTrainer, checked with a fake model: the groups
as rows, the batches in order, the group loss, the stopping limits and the history read from the trainer's log."""

from __future__ import annotations

import time

import pytest
import torch
from transformers import TrainerControl, TrainerState

from earlyrank.engine.trainer_parts import (
    DEV_METRIC,
    DevEvaluator,
    GroupLoss,
    InOrderBatchSampler,
    Limits,
    groups_dataset,
    history,
)
from earlyrank.engine.training import TrainParams, batch_loss, train
from earlyrank.engine.training_data import DevCandidates, Group

GROUPS = [Group("q0", "p0", ("n0",), "a"), Group("q1", "p1", ("n1",), "b", teacher=(0.9, 0.1), labelled=False)]


class FakeCrossEncoder(torch.nn.Module):
    """Scores a pair by a learnable weight times the passage's length: enough to check the loss's plumbing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(1.0))
        self.device = torch.device("cpu")
        self.pairs: list[tuple[str, str]] = []

    def preprocess(self, pairs, prompt=None, task=None):
        self.pairs = list(pairs)
        return {"lengths": torch.tensor([float(len(p)) for _, p in pairs])}

    def forward(self, tokens):
        return {"scores": self.weight * tokens["lengths"]}


def test_groups_become_rows_in_the_given_order_with_their_teacher_and_label():
    data = groups_dataset(GROUPS, [1, 0, 1])
    assert data["query"] == ["q1", "q0", "q1"]
    assert data["passages"][0] == ["p1", "n1"]  # positive first
    assert data["teacher"][:2] == [pytest.approx([0.9, 0.1]), []]
    assert data["labelled"] == [False, True, False]


def test_batches_are_consecutive_rows():
    data = groups_dataset(GROUPS, [0, 1, 0, 1, 0])
    assert list(InOrderBatchSampler(data, batch_size=2, drop_last=False)) == [[0, 1], [2, 3], [4]]


def test_the_group_loss_scores_every_pair_and_applies_the_batch_loss():
    model = FakeCrossEncoder()
    params = TrainParams(distill_weight=0.5)
    loss = GroupLoss(model, lambda logits, batch: batch_loss(logits, batch, params))
    data = groups_dataset(GROUPS, [0, 1])
    value = loss([data["query"], data["passages"], data["teacher"], data["labelled"]])
    assert model.pairs == [("q0", "p0"), ("q0", "n0"), ("q1", "p1"), ("q1", "n1")]
    logits = torch.tensor([[2.0, 2.0], [2.0, 2.0]])  # every passage is two characters long
    rebuilt = [GROUPS[0], Group("q1", "p1", ("n1",), "", teacher=(0.9, 0.1), labelled=False)]
    assert value.item() == pytest.approx(batch_loss(logits, rebuilt, params).item())
    # Equal logits: the label loss of group 0 is log 2 + its pointwise part, and group 1 adds the teacher's KL.
    assert value.item() > 0.5 * torch.log(torch.tensor(2.0)).item()
    value.backward()
    assert model.weight.grad is not None and model.weight.grad.item() != 0.0


def test_the_dev_evaluator_reports_its_score_under_the_dev_metric():
    evaluator = DevEvaluator(lambda model: 0.625)
    assert evaluator(object()) == {DEV_METRIC: 0.625} and evaluator.primary_metric == DEV_METRIC


def test_limits_stop_at_the_step_limit_and_evaluate_and_save_that_step():
    limits, state = Limits(max_steps=2), TrainerState()
    limits.on_train_begin(None, state, TrainerControl())
    state.global_step = 1
    control = limits.on_step_end(None, state, TrainerControl())
    assert not control.should_training_stop
    state.global_step = 2
    control = limits.on_step_end(None, state, TrainerControl())
    assert control.should_training_stop and control.should_evaluate and control.should_save and control.should_log


def test_limits_save_a_checkpoint_every_few_minutes_between_the_trainers_own():
    """Checkpoints came only with evaluations (adapt: every 50 steps, about 12 minutes on 2 cores), so Ctrl+C lost
    up to that much; now one is saved once `save_minutes` have passed since the last save, and only then."""
    limits, state = Limits(save_minutes=2.0), TrainerState()
    limits.on_train_begin(None, state, TrainerControl())
    assert not limits.on_step_end(None, state, TrainerControl()).should_save
    limits.saved = time.time() - 121
    control = limits.on_step_end(None, state, TrainerControl())
    assert control.should_save and not control.should_training_stop and not control.should_evaluate
    limits.on_save(None, state, control)
    assert not limits.on_step_end(None, state, TrainerControl()).should_save
    never = Limits(save_minutes=0.0)
    never.saved = time.time() - 10_000
    assert not never.on_step_end(None, state, TrainerControl()).should_save


def test_the_time_limit_counts_the_minutes_of_earlier_runs():
    limits, state = Limits(max_minutes=5.0), TrainerState()
    limits.on_train_begin(None, state, TrainerControl())
    state.log_history = [{"loss": 1.0, "step": 10, "minutes": 4.0}]  # restored from the checkpoint
    assert not limits.on_step_end(None, state, TrainerControl()).should_training_stop
    limits.started = time.time() - 61  # one minute more in this run
    assert limits.on_step_end(None, state, TrainerControl()).should_training_stop
    state.log_history.append({"loss": 0.5, "step": 11})
    limits.on_log(None, state, TrainerControl(), logs={"loss": 0.5})
    assert state.log_history[-1]["minutes"] == pytest.approx(5.0167, abs=0.01)


def test_history_pairs_each_evaluation_with_the_loss_logged_before_it():
    log = [{"loss": 2.0, "step": 5, "minutes": 1.0}, {"eval_dev_ndcg@10": 0.5, "step": 5, "minutes": 1.5},
           {"loss": 1.0, "step": 10, "minutes": 2.5}, {"eval_dev_ndcg@10": 0.75, "step": 10, "minutes": 3.0},
           {"train_loss": 1.5, "step": 10}]
    assert history(log) == [{"step": 5, "loss": 2.0, "dev_ndcg@10": 0.5, "minutes": 1.0},
                            {"step": 10, "loss": 1.0, "dev_ndcg@10": 0.75, "minutes": 2.5}]


def test_a_checkpoint_of_the_hand_written_loop_is_refused_not_misread(tmp_path):
    (tmp_path / ".m.checkpoint").mkdir()
    (tmp_path / ".m.checkpoint" / "state.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="earlier earlyrank"):
        train(GROUPS, DevCandidates(), tmp_path / "m", TrainParams(base_model=str(tmp_path / "none")), progress=False)


def test_a_resume_skips_a_checkpoint_cut_off_while_saving_and_survives_teacher_rounding(tmp_path):
    """transformers' get_last_checkpoint picks the highest-numbered folder, even one a Ctrl+C cut off while it
    was written (checkpoints now come every two minutes, so that is likelier); and teacher scores computed on
    another machine may differ in their last bits without the training data being any different."""
    from earlyrank.engine.training import groups_fingerprint, last_checkpoint
    from earlyrank.engine.training_data import Group

    assert last_checkpoint(tmp_path / "none") is None
    for step, whole in ((50, True), (100, True), (150, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if whole:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-100")
    group = Group("q", "p", ("n",), "idx:distill", teacher=(0.81234567, 0.1), labelled=False)
    nudged = Group("q", "p", ("n",), "idx:distill", teacher=(0.81234567 + 1e-12, 0.1), labelled=False)
    other = Group("q", "p", ("n",), "idx:distill", teacher=(0.9, 0.1), labelled=False)
    assert groups_fingerprint([group]) == groups_fingerprint([nudged]) != groups_fingerprint([other])
