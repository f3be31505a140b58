"""The operating point `earlyrank tune` stores with a model: which stopping policy, its settings and the blend.

Serving reads it here; `earlyrank.engine.tuning` writes it. A stored row names its policy by `PolicyKind`.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

from earlyrank.engine.model_files import OPERATING_POINT
from earlyrank.engine.stopping import FullRerank, RankPrior, ResidualRisk, Threshold, TopKConfident


class PolicyKind(str, Enum):
    """A stopping policy's stored name (each policy class's `name`)."""

    FULL = "full"
    THRESHOLD = "threshold"
    TOP_K = "topk"
    RISK = "risk"


POLICY_PARAMS = frozenset({"tau", "chunk", "depth", "k", "epsilon", "first_chunk", "max_chunk", "blend"})


def load_operating_point(model_dir: Path, depth: int | None = None):
    """(policy, blend) stored by `tune`, or a full rerank with no blend if the model was never tuned.

    Raises ValueError naming the file if it is not a stored operating point.
    """
    path = model_dir / OPERATING_POINT
    if not path.is_file():
        return FullRerank(depth=depth or 100), 0.0
    try:
        point = json.loads(path.read_text())
        return (policy_from(point["chosen"], RankPrior.from_dict(point["prior"]), depth, point["depth"]),
                float(point["blend"]))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an operating point written by `earlyrank tune` ({e!r}); "
                         f"run `earlyrank tune --model {model_dir}` again") from None


def policy_from(row: dict, prior: RankPrior | None, depth: int | None = None, tuned_depth: int | None = None):
    """The policy a sweep row describes. `depth` (the candidates a caller recalls) replaces the row's depth,
    except that a cap chosen below the depth it was tuned at (`tuned_depth`) stays a cap."""
    params = {k: v for k, v in row.items() if k in POLICY_PARAMS}
    if depth:
        capped = tuned_depth is not None and row["depth"] < tuned_depth
        params["depth"] = min(depth, row["depth"]) if capped else depth
    kind = PolicyKind(row["policy"])
    if kind is PolicyKind.RISK:
        if prior is None:
            raise ValueError("a residual-risk operating point needs its dev rank prior")
        return ResidualRisk(prior=prior, **params)
    classes = {PolicyKind.FULL: FullRerank, PolicyKind.THRESHOLD: Threshold, PolicyKind.TOP_K: TopKConfident}
    return classes[kind](**params)
