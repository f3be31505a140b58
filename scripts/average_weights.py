"""Write the weight-space average of two fine-tuned cross-encoders: (1 - alpha) * A + alpha * B.

This is WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022, section 3): two models
fine-tuned from one starting point are averaged tensor by tensor, with no training. Both must have the same
tensors (names and shapes); the average is taken in float64 and stored in A's dtype (a tensor that is not
floating point, such as position ids, must be equal in both and is kept). A's config, tokenizer and
inference settings are copied beside it; calibration, operating point and answer gate are not, because they
belong to A's scores and must be refitted (`earlyrank calibrate`, `tune`, `fit-abstention`).

    python scripts/average_weights.py engine/models/earlyrank-minilm-ce /work/model-gpu-distill --alpha 0.5 \
        --out /work/model-wise

Errors: a missing model file, tensors that differ in name or shape, or alpha outside [0, 1] stop the script
with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "inference.json")


def average_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * a + alpha * b for every tensor, in a's dtype. Raises ValueError on mismatched tensors."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise ValueError(f"the models hold different tensors, e.g. {only[:3]}")
    out = {}
    for name, left in a.items():
        right = b[name]
        if left.shape != right.shape:
            raise ValueError(f"tensor {name!r} has shape {tuple(left.shape)} in A and {tuple(right.shape)} in B")
        if not left.is_floating_point():  # e.g. position ids: kept, and must agree
            if not torch.equal(left, right):
                raise ValueError(f"non-float tensor {name!r} differs between A and B")
            out[name] = left.contiguous()
            continue
        mixed = (1.0 - alpha) * left.double() + alpha * right.double()
        out[name] = mixed.to(left.dtype).contiguous()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_a", type=Path, help="folder with model.safetensors (its config is copied)")
    parser.add_argument("model_b", type=Path, help="folder with model.safetensors")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of B (default 0.5)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (must not exist)")
    args = parser.parse_args(argv)
    try:
        for folder in (args.model_a, args.model_b):
            if not (folder / "model.safetensors").is_file():
                raise ValueError(f"{folder}/model.safetensors does not exist")
        if args.out.exists():
            raise ValueError(f"--out {args.out} exists; give a new folder")
        state = average_state(
            load_file(args.model_a / "model.safetensors"), load_file(args.model_b / "model.safetensors"), args.alpha
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True)
    save_file(state, args.out / "model.safetensors", metadata={"format": "pt"})
    for name in COPIED:
        if (args.model_a / name).is_file():
            shutil.copy2(args.model_a / name, args.out / name)
    card = {"method": "WiSE-FT weight average", "model_a": str(args.model_a), "model_b": str(args.model_b),
            "alpha": args.alpha}
    (args.out / "average_card.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {args.out}/model.safetensors: (1 - {args.alpha}) * A + {args.alpha} * B, {len(state)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
