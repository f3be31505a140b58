"""The pieces `earlyrank train` hands to sentence-transformers' `CrossEncoderTrainer`: the training groups as a
`datasets.Dataset` read in the order given, a loss module over whole groups, an evaluator that reports dev nDCG@10
through a given function, and a callback that stops a run at a step or time limit without changing its schedule.

Imported only when training starts: it loads torch, transformers, datasets and the trainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers.base.evaluation import BaseEvaluator
from sentence_transformers.base.model import BaseModel
from sentence_transformers.base.sampler import DefaultBatchSampler
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.util import batch_to_device
from torch import Tensor, nn
from torch.utils.data import SequentialSampler
from transformers import TrainerCallback

from earlyrank.engine.training_data import Group

DEV_METRIC = "dev_ndcg@10"  # the evaluator's key; the trainer logs it as "eval_dev_ndcg@10"


def groups_dataset(groups: Sequence[Group], order: Sequence[int]) -> Dataset:
    """One row per entry of `order` (an index into `groups`): the question, its passages (positive first), the
    teacher's scores (empty when none) and whether the positive is known."""
    rows = [groups[i] for i in order]
    return Dataset.from_dict({
        "query": [g.query for g in rows],
        "passages": [[g.positive, *g.negatives] for g in rows],
        "teacher": [list(g.teacher) if g.teacher is not None else [] for g in rows],
        "labelled": [g.labelled for g in rows],
    })


class InOrderBatchSampler(DefaultBatchSampler):
    """Batches of consecutive rows: the rows were shuffled once when the data set was made, so a run and its
    resumption read the same batches, and so does any other loop given the same order."""

    def __init__(self, dataset: Dataset, batch_size: int, drop_last: bool,
                 valid_label_columns: list[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0) -> None:
        super().__init__(SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last,  # type: ignore[arg-type]
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)


class GroupLoss(nn.Module):
    """The trainer's loss: the cross-encoder scores every (question, passage) pair of a batch of groups and
    `batch_loss(logits, groups)` turns the (groups, passages) logit matrix into one loss."""

    def __init__(self, model: CrossEncoder, batch_loss: Callable[[Tensor, list[Group]], Tensor]) -> None:
        super().__init__()
        self.model = model
        self.batch_loss = batch_loss

    def forward(self, inputs: list[list], labels: Tensor | None = None, prompt: str | None = None,
                task: str | None = None) -> Tensor:
        queries, passages, teachers, labelled = inputs
        pairs = [(q, p) for q, group in zip(queries, passages, strict=True) for p in group]
        tokens = batch_to_device(self.model.preprocess(pairs, prompt=prompt, task=task), self.model.device)
        logits = self.model(tokens)["scores"].view(len(queries), -1)
        groups = [Group(q, ps[0], tuple(ps[1:]), "", tuple(t) if t else None, bool(lab))
                  for q, ps, t, lab in zip(queries, passages, teachers, labelled, strict=True)]
        return self.batch_loss(logits, groups)


class DevEvaluator(BaseEvaluator):
    """Dev nDCG@10 of the model being trained, as `score(model)` computes it (the serving scorer's own reading of
    the dev candidates), under the key `DEV_METRIC`."""

    def __init__(self, score: Callable[[BaseModel], float]) -> None:
        super().__init__()
        self.score = score
        self.primary_metric = DEV_METRIC

    def __call__(self, model: BaseModel, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        return {DEV_METRIC: float(self.score(model))}


class Limits(TrainerCallback):
    """Stops training after `max_steps` optimizer steps or `max_minutes` of training (0: no limit), evaluating,
    logging and checkpointing the step it stops at; the learning-rate schedule still spans the whole run. Every log
    entry gets the training minutes so far, counted across resumptions (a resumed run starts from the last
    entry's). Between the trainer's own checkpoints it also saves one once `save_minutes` have passed since the
    last (0: never), so an interrupted run on a slow CPU loses minutes, not the steps since the last evaluation."""

    def __init__(self, max_steps: int = 0, max_minutes: float = 0.0, save_minutes: float = 2.0) -> None:
        self.max_steps = max_steps
        self.max_minutes = max_minutes
        self.save_minutes = save_minutes
        self.started = time.time()
        self.saved = self.started
        self.before: float | None = None  # minutes of earlier runs, read once the resumed state is loaded

    def minutes(self, state) -> float:
        if self.before is None:
            self.before = max((e.get("minutes", 0.0) for e in state.log_history), default=0.0)
        return self.before + (time.time() - self.started) / 60

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.saved = time.time()
        self.before = None

    def on_step_end(self, args, state, control, **kwargs):
        out_of_time = bool(self.max_minutes) and self.minutes(state) > self.max_minutes
        if out_of_time or (self.max_steps > 0 and state.global_step >= self.max_steps):
            control.should_training_stop = True
            control.should_log = control.should_evaluate = control.should_save = True
        elif self.save_minutes and time.time() - self.saved >= self.save_minutes * 60:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.saved = time.time()
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        state.log_history[-1]["minutes"] = self.minutes(state)
        return control


def history(log_history: list[dict]) -> list[dict]:
    """One entry per evaluation: step, mean training loss since the previous one, dev nDCG@10 and the training
    minutes before it ran, from the trainer's log."""
    losses = {e["step"]: e for e in log_history if "loss" in e}
    entries = []
    for e in log_history:
        if f"eval_{DEV_METRIC}" in e:
            logged = losses.get(e["step"], {})
            entries.append({"step": e["step"], "loss": float(logged.get("loss", np.nan)),
                            "dev_ndcg@10": float(e[f"eval_{DEV_METRIC}"]),
                            "minutes": float(logged.get("minutes", e.get("minutes", 0.0)))})
    return entries
