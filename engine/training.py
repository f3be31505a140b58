"""Fine-tune the cross-encoder: listwise, pointwise or mixed loss over (1 positive + n negatives) groups.

The loop is sentence-transformers' `CrossEncoderTrainer` (engine/trainer_parts.py holds what it is given): small
micro-batches with gradient accumulation, length-capped pairs, a fixed seed, separate learning rates for the encoder
body and the classifier head. Resumable: the trainer checkpoints (weights, optimizer, scheduler, step, RNG state,
best dev score) every evaluation, and a run restarted with the same output directory continues from the last one.
The best model by dev nDCG@10 (or the last) is written to the output directory in fp16, with its tokenizer and a
training card.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.model_files import CARD
from earlyrank.engine.training_data import (
    DevCandidates,
    Group,
    best_windows,
    check_choice,
    check_dev_split,
    check_self_supervised_kind,
)

LOSSES = ("listwise", "pointwise", "mixed")
SELECTIONS = ("dev", "last")


@dataclass(frozen=True)
class TrainParams:
    """The settings of one fine-tuning run, written to its training card: pair length in tokens, how groups are made,
    the loss, the schedule (learning rates, warm-up as a fraction of the steps, evaluation every `eval_every` optimizer
    steps, optional limits in minutes and steps) and dev selection. ValueError naming the setting for a loss, dev split
    or self-supervised kind not among the choices, windows < 1, or negatives < 1 or fewer than the random ones."""

    max_length: int = 192
    negatives: int = 7
    random_negatives: int = 1
    mining_depth: int = 30
    self_supervised: int = 0  # self-supervised groups per corpus (0 = none)
    self_supervised_kind: str = "title"  # "title": a passage's title is the question; "sentence": inverse cloze
    loss: str = "mixed"
    epochs: float = 2.0
    groups_per_batch: int = 2
    accumulation: int = 2
    lr_body: float = 4e-5
    lr_head: float = 1e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    dev_queries: int = 100
    dev_split: str = "title"  # "title": dev holds whole articles no training question saw; "query": any queries
    windows: int = 1  # train each long passage on its best of this many inference windows (1 = its head)
    dev_depth: int = 20
    eval_every: int = 100  # optimizer steps
    max_minutes: float = 0.0  # 0 = no time limit
    max_steps: int = 0  # stop after this many optimizer steps (0 = the whole schedule); the schedule is unchanged
    seed: int = 13
    base_model: str = ""
    distill: int = 0  # label-free groups per corpus scored by the bi-encoder teacher (0 = none)
    distill_weight: float = 0.0  # weight of the teacher's KL term on every group with teacher scores (0 = off)
    selection: str = "dev"  # "dev": keep the best model by dev nDCG@10; "last": keep the last one

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_dev_split(self.dev_split)
        check_self_supervised_kind(self.self_supervised_kind)
        check_choice("selection", self.selection, SELECTIONS)
        if self.distill and not self.distill_weight:
            raise ValueError("distill groups carry only teacher scores: give distill_weight > 0 to train on them")
        if self.windows < 1:
            raise ValueError(f"windows must be at least 1, got {self.windows}")
        if self.negatives < 1 or self.random_negatives > self.negatives:
            raise ValueError("need negatives >= 1 and random_negatives <= negatives")


def batch_loss(logits, batch: list[Group], params: TrainParams):
    """The training loss of one micro-batch: `group_loss` over its labelled groups plus `distill_weight` times the
    teacher's KL term over its groups with teacher scores; `logits` is (groups, 1 + negatives)."""
    import torch

    from earlyrank.engine.distillation import distill_loss

    total = logits.new_zeros(())
    labelled = [i for i, g in enumerate(batch) if g.labelled]
    if labelled:
        total = total + group_loss(logits[labelled], params.loss) * len(labelled) / len(batch)
    taught = [i for i, g in enumerate(batch) if g.teacher is not None]
    if params.distill_weight and taught:
        teacher = torch.tensor([batch[i].teacher for i in taught], dtype=logits.dtype)
        total = total + params.distill_weight * distill_loss(logits[taught], teacher) * len(taught) / len(batch)
    return total


def group_loss(logits, loss: str):
    """Loss of a (groups, 1 + negatives) logit matrix whose first column is the positive."""
    import torch
    import torch.nn.functional as F

    target = torch.zeros(logits.shape[0], dtype=torch.long)
    listwise = F.cross_entropy(logits, target)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    # Weight the positive as much as all negatives together, so the pointwise part is not swamped.
    weights = torch.ones_like(logits)
    weights[:, 0] = logits.shape[1] - 1
    pointwise = F.binary_cross_entropy_with_logits(logits, labels, weight=weights) * 2 / logits.shape[1]
    return {"listwise": listwise, "pointwise": pointwise, "mixed": listwise + pointwise}[loss]


def dev_ndcg(scorer, dev: DevCandidates) -> float:
    """nDCG@10 of the reranked dev candidates (reranker score alone)."""
    from earlyrank.engine.evaluation import evaluate_run

    run = {}
    for qid, text, candidates in dev.items:
        logits = scorer.logits([text] * len(candidates), [t for _, t in candidates])
        run[qid] = {doc_id: float(s) for (doc_id, _), s in zip(candidates, logits, strict=True)}
    return evaluate_run(dev.qrels, run)["nDCG@10"]


def train(groups: list[Group], dev: DevCandidates, out: Path, params: TrainParams, progress: bool = True) -> dict:
    """Train on `groups` with sentence-transformers' `CrossEncoderTrainer`, select on `dev`, write the kept model to
    `out` (fp16) with a training card; returns the card. Resumes from the trainer's checkpoint beside `out`;
    ValueError if that checkpoint was written with other parameters or by the earlier hand-written loop."""
    from earlyrank.indexes.torch_runtime import configure_torch

    configure_torch()
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder as Model
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out.parent / f".{out.name}.checkpoint"  # beside the model, never shipped with it
    resume = _resume_point(checkpoint, params, groups_fingerprint(groups))
    random.seed(params.seed)
    np.random.seed(params.seed)
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(params.base_model, local_files_only=True)
    # fp32 whatever the stored dtype: a shipped model (fp16 safetensors) can be the start of a second stage.
    model = Model(params.base_model, max_length=params.max_length, local_files_only=True, device="cpu",
                  model_kwargs={"dtype": torch.float32})
    groups = best_windows(groups, _scorer(model, tokenizer, params))
    trainer = _trainer(model, tokenizer, groups, dev, checkpoint, params, progress)
    trainer.train(resume_from_checkpoint=resume)
    _save_model(model.model, tokenizer, out)
    card = _card(out, params, groups, dev, trainer.state, trainer.args.max_steps)
    (out / CARD).write_text(json.dumps(card, indent=2))
    return card


def _trainer(model, tokenizer, groups: list[Group], dev: DevCandidates, checkpoint: Path, params: TrainParams,
             progress: bool):
    """The `CrossEncoderTrainer` for `params`: the schedule spans `epochs` over the groups, shuffled once by the
    seed; evaluation, logging and checkpoints every `eval_every` steps; the step and time limits stop it early."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from transformers import PrinterCallback

    from earlyrank.engine import trainer_parts as parts

    micro_steps = int(len(groups) * params.epochs) // params.groups_per_batch
    total_steps = max(1, micro_steps // params.accumulation)
    order = np.random.default_rng(params.seed).permutation(np.resize(np.arange(len(groups)),
                                                                     micro_steps * params.groups_per_batch))
    rows = np.resize(order, total_steps * params.accumulation * params.groups_per_batch)
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoint), use_cpu=True, seed=params.seed, max_steps=total_steps,
        per_device_train_batch_size=params.groups_per_batch, gradient_accumulation_steps=params.accumulation,
        learning_rate=params.lr_body, learning_rate_mapping={r"\.(classifier|bert\.pooler)\.": params.lr_head},
        weight_decay=params.weight_decay, lr_scheduler_type="linear", warmup_steps=int(params.warmup * total_steps),
        max_grad_norm=1.0, batch_sampler=parts.InOrderBatchSampler, eval_strategy="steps",
        eval_steps=params.eval_every, save_strategy="steps", save_steps=params.eval_every,
        save_total_limit=2,  # the best and the last: with 1, the trainer deletes the last (the resume point) at the end
        logging_strategy="steps", logging_steps=params.eval_every, load_best_model_at_end=params.selection == "dev",
        metric_for_best_model=f"eval_{parts.DEV_METRIC}", greater_is_better=True, report_to="none",
        disable_tqdm=not progress, dataloader_pin_memory=False)
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=parts.groups_dataset(groups, rows.tolist()),
        loss=parts.GroupLoss(model, lambda logits, batch: batch_loss(logits, batch, params)),
        evaluator=parts.DevEvaluator(lambda m: dev_ndcg(_scorer(m, tokenizer, params), dev) if dev.items else 0.0),
        callbacks=[parts.Limits(params.max_steps, params.max_minutes)])
    if not progress:
        trainer.remove_callback(PrinterCallback)  # what a progress bar would show, printed line by line instead
    return trainer


def _card(out: Path, params: TrainParams, groups: list[Group], dev: DevCandidates, state, total_steps: int) -> dict:
    """The training card: settings, data, steps, time, the dev history from the trainer's log and the kept step."""
    import os

    import torch

    from earlyrank.engine.trainer_parts import history

    entries = history(state.log_history)
    kept = None
    if entries:
        best = max(entries, key=lambda h: h["dev_ndcg@10"])  # max keeps the first of equals, as the trainer does
        chosen = best if params.selection == "dev" else entries[-1]
        kept = {"step": chosen["step"], "dev_ndcg@10": chosen["dev_ndcg@10"]}
    card = {
        "name": out.name,
        "base_model": params.base_model,
        "params": asdict(params),
        "groups": len(groups),
        "groups_by_source": _count_sources(groups),
        "dev_queries": len(dev.items),
        "steps": state.global_step,
        "total_steps": total_steps,
        "minutes": state.log_history[-1].get("minutes", 0.0) if state.log_history else 0.0,
        "best_dev_ndcg@10": max((h["dev_ndcg@10"] for h in entries), default=-1.0),
        "kept": kept,  # the saved model's step and dev score (selection "last" keeps the last)
        "history": entries,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    previous = Path(params.base_model) / CARD
    if previous.is_file():  # a second stage: keep the first stage's card, so the model's history stays whole
        card["previous_stage"] = json.loads(previous.read_text())
    return card


def _scorer(model, tokenizer, params: TrainParams):
    """The serving scorer over the model being trained (a sentence-transformers CrossEncoder): dev is read, and
    long passages are windowed, exactly as at inference."""
    from earlyrank.engine.calibration import Calibration
    from earlyrank.engine.cross_encoder import CrossEncoder, TorchBackend

    return CrossEncoder(TorchBackend(model.model), tokenizer, Calibration(), params.max_length, batch_size=32,
                        windows=params.windows)


def groups_fingerprint(groups: list[Group]) -> str:
    """A sha256 of the training groups, every field in order: what a resumed run must train on to continue.
    Teacher scores are rounded to 6 decimals first: they come from vectors computed at run time, whose last
    bits may differ on another CPU or library build without the data being any different."""
    digest = hashlib.sha256()
    for g in groups:
        fields = asdict(g)
        if g.teacher is not None:
            fields["teacher"] = [round(t, 6) for t in g.teacher]
        digest.update(json.dumps(fields, ensure_ascii=False).encode())
    return digest.hexdigest()


def last_checkpoint(checkpoint: Path) -> str | None:
    """The highest-numbered trainer checkpoint in `checkpoint` that was written whole (its trainer_state.json is
    the trainer's last file), or None. A run stopped while saving leaves a partial folder, which transformers'
    get_last_checkpoint would pick."""
    if not checkpoint.is_dir():
        return None
    whole = [(int(d.name.split("-")[1]), d) for d in checkpoint.glob("checkpoint-*")
             if d.name.split("-")[1].isdigit() and (d / "trainer_state.json").is_file()]
    return str(max(whole)[1]) if whole else None


def _resume_point(checkpoint: Path, params: TrainParams, data: str) -> str | None:
    """The trainer checkpoint to resume from (None: start afresh), after checking it was written with the same
    parameters and on the same groups (`data`, their `groups_fingerprint`); records both beside its checkpoints.
    ValueError naming what differs, else a rerun into the same --out with other data or options would silently
    continue a run it is not."""
    if (checkpoint / "state.pt").is_file():
        raise ValueError(f"{checkpoint} was written by an earlier earlyrank (its own training loop); delete it to "
                         f"start afresh")
    recorded = checkpoint / "params.json"
    last = last_checkpoint(checkpoint)
    if last is not None and recorded.is_file():
        before = json.loads(recorded.read_text())
        if _trajectory(before) != _trajectory(asdict(params)):
            raise ValueError(f"{checkpoint} was written by a run with other parameters; delete it to start "
                             f"afresh, or rerun with the same options to resume")
        if before.get("data_fingerprint", data) != data:
            raise ValueError(f"{checkpoint} was written by a run on other training data (another corpus or data "
                             f"set); choose another --out, or delete {checkpoint} to start afresh")
    checkpoint.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps({**asdict(params), "data_fingerprint": data}, indent=2))
    return last


# Limits on when a run stops or reports do not change what it learns, so a resumed run may set them anew.
_STOP_FIELDS = frozenset({"max_minutes", "max_steps", "eval_every", "data_fingerprint"})


def _trajectory(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in _STOP_FIELDS}


def _count_sources(groups: list[Group]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for g in groups:
        counts[g.source] = counts.get(g.source, 0) + 1
    return counts


def _save_model(model, tokenizer, out: Path) -> None:
    """Write fp16 safetensors (half the size; loaded back as fp32) and the tokenizer."""
    import copy

    import torch

    half = copy.deepcopy(model).to(torch.float16)
    half.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def run_training(data_dirs: list[Path], out: Path, params: TrainParams, progress: bool = True) -> dict:
    """`earlyrank train`: load each data set and its cached index, build groups and dev, then train."""
    from earlyrank.engine.corpora import dataset_index
    from earlyrank.engine.datasets import load_dataset
    from earlyrank.engine.training_data import build_training_set
    from earlyrank.indexes.dense import default_model_path

    if not params.base_model:
        params = TrainParams(**{**asdict(params), "base_model": str(default_model_path())})
    datasets = [(ds, dataset_index(ds, progress)) for ds in map(load_dataset, data_dirs)]
    groups, dev = build_training_set(
        datasets, dev_queries=params.dev_queries, dev_depth=params.dev_depth, negatives=params.negatives,
        random_negatives=params.random_negatives, mining_depth=params.mining_depth,
        self_supervised=params.self_supervised, seed=params.seed, dev_split=params.dev_split,
        self_supervised_kind=params.self_supervised_kind)
    if not groups:
        raise ValueError("no training groups: do the data sets have qrels/train.tsv with positive judgements?")
    if params.distill_weight:
        from earlyrank.engine.distillation import add_teacher

        indexes = [index for _, index in datasets]
        groups = add_teacher(groups, indexes, [params.distill] * len(indexes), dev_docs=dev.documents(),
                             size=1 + params.negatives, depth=params.mining_depth, seed=params.seed)
    card = train(groups, dev, out, params, progress)
    card["data"] = [str(d) for d in data_dirs]
    (out / CARD).write_text(json.dumps(card, indent=2))
    return card
