"""scripts/train_on_gpu.py restates the engine's loss (it runs where the engine is not installed): both must agree."""

from __future__ import annotations

import pytest

from earlyrank.engine.training import TrainParams, batch_loss
from earlyrank.engine.training_data import Group
from tests.conftest import load_program


def test_the_scripts_loss_is_the_engines_on_mixed_batches():
    import torch

    gpu = load_program("scripts/train_on_gpu.py")
    torch.manual_seed(0)
    # Two labelled groups with teacher scores, one label-free group: all of 4 passages, as the engine batches them.
    teachers = [(0.9, 0.2, 0.1, 0.3), None, (0.5, 0.6, 0.4, 0.1)]
    labelled = [True, True, False]
    pairs = list(zip(teachers, labelled, strict=True))
    groups = [Group("q", "p", ("a", "b", "c"), "s", teacher=t, labelled=lab) for t, lab in pairs]
    logits = torch.randn(3, 4)
    engine = batch_loss(logits, groups, TrainParams(distill=0, distill_weight=0.7, loss="mixed"))
    rows = [{"t": t, "l": lab} for t, lab in pairs]
    standalone = gpu.batch_loss(list(logits), rows, 0.7)
    assert standalone.item() == pytest.approx(engine.item(), rel=1e-5)
    assert gpu.batch_loss(list(logits), rows, 0.0).item() == pytest.approx(
        batch_loss(logits, groups, TrainParams(loss="mixed")).item(), rel=1e-5)
