"""Train the cross-encoder on an exported group file (scripts/export_training_groups.py) on one GPU, standalone.

It needs only torch, transformers and safetensors, so it runs on a lent GPU machine that has not the engine's
dependencies. The loss is the engine's (engine/training.py `batch_loss`): on labelled groups the mixed listwise +
pointwise loss, and on every group with teacher scores `distill_weight` times the KL divergence from
softmax(teacher cosine / 0.05) to the student's softmax (engine/distillation.py), each averaged over the groups of a
batch and weighted by their share of it. AdamW with separate learning rates for body and head, linear warm-up and
decay, gradient clipping at 1, bf16 autocast on CUDA. The last model is kept (selection "last"). The loss is
restated here, not imported, because the engine is not installed where this runs; tests/test_train_on_gpu.py
checks that both give the same value.

The fp16 model is written to OUT/model.safetensors.part-NN pieces of at most --part-mib MiB (so that they pass
size limits on files), with its sha256 and a training card:

    python scripts/train_on_gpu.py --groups gpu-run/groups.json.gz --init engine/models/earlyrank-minilm-ce --out OUT
    cat OUT/model.safetensors.part-* > MODEL/model.safetensors   # then copy config and tokenizer beside it
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

TEMPERATURE = 0.05  # engine/distillation.py


def group_loss(logits: torch.Tensor) -> torch.Tensor:
    """The engine's mixed loss of a (groups, passages) matrix whose first column is the positive."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    listwise = F.cross_entropy(logits, target)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    weights = torch.ones_like(logits)
    weights[:, 0] = logits.shape[1] - 1
    pointwise = F.binary_cross_entropy_with_logits(logits, labels, weight=weights) * 2 / logits.shape[1]
    return listwise + pointwise


def distill_loss(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return F.kl_div(F.log_softmax(logits, dim=-1), F.softmax(teacher / TEMPERATURE, dim=-1), reduction="batchmean")


def batch_loss(logits: list[torch.Tensor], batch: list[dict], distill_weight: float) -> torch.Tensor:
    """`logits[i]` holds group i's passages' logits (positive first where labelled)."""
    total = logits[0].new_zeros(())
    n = len(batch)
    for size in sorted({len(x) for x in logits}):  # stack groups of one size
        same = [i for i in range(n) if len(logits[i]) == size]
        labelled = [i for i in same if batch[i]["l"]]
        if labelled:
            total = total + group_loss(torch.stack([logits[i] for i in labelled])) * len(labelled) / n
        taught = [i for i in same if batch[i]["t"] is not None]
        if distill_weight and taught:
            teacher = torch.tensor([batch[i]["t"] for i in taught], dtype=torch.float32, device=logits[0].device)
            student = torch.stack([logits[i] for i in taught]).float()
            total = total + distill_weight * distill_loss(student, teacher) * len(taught) / n
    return total


def save_parts(model, tokenizer, out: Path, part_mib: float) -> dict:
    tmp = Path(tempfile.mkdtemp())  # the whole file stays out of OUT, whose files are size-limited
    model.to(torch.float16).save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    data = (tmp / "model.safetensors").read_bytes()
    size = int(part_mib * 2**20)
    parts = []
    for k, start in enumerate(range(0, len(data), size)):
        path = out / f"model.safetensors.part-{k:02d}"
        path.write_bytes(data[start:start + size])
        parts.append(path.name)
    return {"parts": parts, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=Path, required=True)
    parser.add_argument("--init", type=Path, required=True, help="the model to start from")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--groups-per-step", type=int, default=32)
    parser.add_argument("--lr-body", type=float, default=2e-5)
    parser.add_argument("--lr-head", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--distill-weight", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop and save after this long (0 = none)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = the schedule)")
    parser.add_argument("--part-mib", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    started = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with gzip.open(args.groups, "rt", encoding="utf-8") as f:
        data = json.load(f)
    passages, groups = data["passages"], data["groups"]
    tokenizer = AutoTokenizer.from_pretrained(str(args.init), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(args.init), num_labels=1, local_files_only=True,
                                                               dtype=torch.float32).to(device)
    head = [p for n, p in model.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
    body = [p for n, p in model.named_parameters() if not n.startswith(("classifier", "bert.pooler"))]
    optimizer = torch.optim.AdamW([{"params": body, "lr": args.lr_body}, {"params": head, "lr": args.lr_head}],
                                  weight_decay=args.weight_decay)
    total_steps = max(1, int(len(groups) * args.epochs) // args.groups_per_step)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup * total_steps), total_steps)
    order = np.random.default_rng(args.seed).permutation(
        np.resize(np.arange(len(groups)), total_steps * args.groups_per_step))
    print(f"{len(groups)} groups, {len(passages)} passages, {total_steps} steps of {args.groups_per_step} groups on "
          f"{torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; loaded in {time.time() - started:.0f} s",
          flush=True)
    history, running = [], []
    model.train()
    train_started = time.time()
    step = 0
    for step in range(1, total_steps + 1):
        batch = [groups[i] for i in order[(step - 1) * args.groups_per_step: step * args.groups_per_step]]
        queries = [g["q"] for g in batch for _ in g["p"]]
        texts = [passages[p] for g in batch for p in g["p"]]
        encoded = tokenizer(queries, texts, truncation="longest_first", max_length=args.max_length, padding=True,
                            return_tensors="pt").to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            flat = model(**encoded).logits.view(-1).float()
        logits = list(torch.split(flat, [len(g["p"]) for g in batch]))
        loss = batch_loss(logits, batch, args.distill_weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        running.append(loss.item())
        minutes = (time.time() - train_started) / 60
        if step % 50 == 0 or step == total_steps:
            history.append({"step": step, "loss": float(np.mean(running[-50:])), "minutes": minutes})
            print(f"step {step}/{total_steps} loss {history[-1]['loss']:.4f} {minutes:.2f} min", flush=True)
        if (args.max_minutes and minutes > args.max_minutes) or (args.max_steps and step >= args.max_steps):
            print(f"stopped by its limit at step {step}", flush=True)
            break
    args.out.mkdir(parents=True, exist_ok=True)
    saved = save_parts(model.cpu(), tokenizer, args.out, args.part_mib)
    card = {"script": "scripts/train_on_gpu.py", "args": {k: str(v) for k, v in vars(args).items()},
            "export_params": data.get("params"), "groups": len(groups), "steps": step, "total_steps": total_steps,
            "train_minutes": (time.time() - train_started) / 60, "history": history, "model": saved,
            "machine": {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                        "platform": platform.platform(), "torch": torch.__version__}}
    (args.out / "gpu_training_card.json").write_text(json.dumps(card, indent=2))
    print(json.dumps({k: card[k] for k in ("steps", "total_steps", "train_minutes", "model")}), flush=True)


if __name__ == "__main__":
    main()
