"""Calibration and operating-point tuning on the dev split (never the test split).

Both commands score the dev queries' recall candidates once (cached by `engine.offline`), then:
- `calibrate` fits Platt scaling on those (logit, relevant?) pairs and reports ECE and Brier before/after;
- `tune` picks the blend weight on full rerank, measures the rank prior for `ResidualRisk`, sweeps every
  policy's parameters and stores the cheapest point whose nDCG@10 and RR@10 stay within `max_loss` of the
  full rerank.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.calibration import Calibration, brier_score, expected_calibration_error, fit_platt
from earlyrank.engine.model_files import CALIBRATION, CALIBRATION_REPORT, CARD, OPERATING_POINT
from earlyrank.engine.offline import ScoredQuery, labelled_pairs, replay, score_split
from earlyrank.engine.stopping import FullRerank, RankPrior, ResidualRisk, Threshold, TopKConfident
from earlyrank.indexes.passages import Splitter


@dataclass(frozen=True)
class ScoredSplit:
    """A data set's split with each query's recall candidates and their cached logits, and its judgements."""

    name: str
    scored: list[ScoredQuery]
    qrels: dict


def model_key(model_dir: Path, max_length: int, backend: str = "torch-fp32", windows: int = 1) -> str:
    """Cache key of a model's scores: its weights, the truncation length, the passage windows and the backend
    that ran it."""
    digest = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()[:12]
    return (f"{digest}-{max_length}" + ("" if windows == 1 else f"x{windows}")
            + ("" if backend == "torch-fp32" else f"-{backend}"))


def split_queries(dataset, split: str, model_dir: Path):
    """(queries, qrels) of `split`; "dev" is the data set's own dev split (qrels/dev.tsv) where it has one, else
    the part of its train split that the model's training card held out. DatasetError for "dev" of a data set with
    neither; ModelLoadError for "dev" carved from train when `model_dir` has no training card, since its held-out
    questions are then unknown."""
    from earlyrank.engine.model_files import ModelLoadError
    from earlyrank.engine.training_data import dev_titles, split_dev
    from earlyrank.indexes.corpus import DatasetError

    if split != "dev" or "dev" in dataset.qrels:
        return dataset.split(split)
    if "train" not in dataset.qrels:
        raise DatasetError(f"{dataset.name}: no split 'dev' (qrels/dev.tsv), nor a train split to hold dev questions "
                           f"out of; available: {', '.join(sorted(dataset.qrels)) or 'none'}")
    if not (model_dir / CARD).is_file():
        raise ModelLoadError(f"{model_dir} has no {CARD}, so which train questions its training held out as dev is "
                             f"unknown; use a model made by `earlyrank train`, or copy the card of the model it was "
                             f"made from")
    card = json.loads((model_dir / CARD).read_text())["params"]
    queries, qrels = dataset.split("train")
    titles = dev_titles(dataset, card.get("dev_split", "query"))  # cards older than the option split by query
    return split_dev(queries, qrels, card["dev_queries"], card["seed"], titles)[1], qrels


def scored_split(data_dir: Path, split: str, scorer, model_dir: Path, mode: str = "hybrid",
                 depth: int = 100, limit: int = 0, progress: bool = True, ray_address: str | None = None,
                 ray_workers: int = 2, run: Path | None = None, passages: Splitter | None = None) -> ScoredSplit:
    """Score `split`'s recall candidates (cached); with `ray_address` ("local" or a cluster) on Ray actors.

    With `run` (a TREC run file) the candidates are that run's top `depth` instead of recall's (mode
    ``run-<file stem>``). Judged passages missing from the corpus are kept in the qrels: they count as relevant
    passages the run did not retrieve, as trec_eval counts them.
    """
    from earlyrank.engine.cache_dir import cache_root
    from earlyrank.engine.corpora import corpus_fingerprint, dataset_index, passage_qrels, split_tag
    from earlyrank.engine.datasets import load_dataset

    dataset = load_dataset(data_dir, check_judged=False)
    queries, qrels = split_queries(dataset, split, model_dir)
    queries = queries[:limit] if limit else queries
    qrels = {q.id: qrels[q.id] for q in queries}  # judgements of exactly the queries asked
    retriever = None
    if run is not None:
        from earlyrank.indexes.run_file import RunRetriever, read_run

        mode = f"run-{run.stem}"
        retriever = RunRetriever(read_run(run))
    cache = (cache_root() / "scores" / model_key(model_dir, scorer.max_length, scorer.backend.name, scorer.windows)
             / f"{dataset.name}-{corpus_fingerprint(dataset)}-{split}-{mode}-{depth}{split_tag(passages)}.jsonl")
    index = dataset_index(dataset, progress, passages)
    if retriever is not None and run is not None:
        retriever.check_queries([q.id for q in queries], run)
        retriever.check_passages({d.id for d in index.docs}, run, {q.id for q in queries})
    if passages is not None:
        qrels = passage_qrels(qrels, index)
    if ray_address:
        from earlyrank.engine.ray_scoring import CrossEncoderFactory, score_split_ray

        scored = score_split_ray(queries, index, CrossEncoderFactory.like(scorer), mode, depth, cache, ray_address,
                                 ray_workers, progress=progress)
    else:
        scored = score_split(queries, index, scorer, mode, depth, cache, progress, retriever)
    return ScoredSplit(dataset.name, scored, qrels)


def calibrate(model_dir: Path, dev: list[ScoredSplit], plot: bool = True) -> dict:
    """Fit Platt scaling on the dev candidates of every data set; write it and a report into `model_dir`."""
    pairs = [labelled_pairs(d.scored, d.qrels) for d in dev]
    logits = np.concatenate([p[0] for p in pairs])
    labels = np.concatenate([p[1] for p in pairs])
    if labels.sum() == 0:
        raise ValueError("no relevant passage among the dev candidates; cannot calibrate")
    fitted = fit_platt(logits, labels)
    report: dict = {"pairs": int(labels.size), "positives": int(labels.sum()), "calibration": fitted.as_dict()}
    for name, cal in (("before", Calibration()), ("after", fitted)):
        conf = cal.confidence(logits)
        report[name] = {"ece": expected_calibration_error(conf, labels, 15), "brier": brier_score(conf, labels)}
    fitted.save(model_dir / CALIBRATION)
    (model_dir / CALIBRATION_REPORT).write_text(json.dumps(report, indent=2))
    if plot:
        from earlyrank.engine.plots import reliability_diagram

        reliability_diagram({"uncalibrated (sigmoid of logit)": Calibration().confidence(logits),
                             "Platt-calibrated": fitted.confidence(logits)}, labels,
                            model_dir / "reliability.png")
    return report


def mean_metrics(dev: list[ScoredSplit], results_by_set: list[dict]) -> dict[str, float]:
    """nDCG@10 and RR@10 averaged over queries of all data sets."""
    from earlyrank.engine.evaluation import evaluate_run, run_from_hits

    per_query: dict[str, list[float]] = {"nDCG@10": [], "RR@10": []}
    for d, results in zip(dev, results_by_set, strict=True):
        values = evaluate_run(d.qrels, run_from_hits(results), ("nDCG@10", "RR@10"), per_query=True)
        for measure in per_query:
            per_query[measure].extend(values[measure][q] for q in results)
    return {m: float(np.mean(v)) for m, v in per_query.items()}


def fit_prior(dev: list[ScoredSplit], calibration: Calibration, depth: int) -> RankPrior:
    """How often a relevant passage sits at each recall rank, and the confidences of relevant/other ones."""
    at_rank = np.zeros(depth)
    relevant, other = [], []
    queries = 0
    for d in dev:
        for sq in d.scored:
            judged = d.qrels.get(sq.query_id, {})
            queries += 1
            conf = calibration.confidence(sq.logits)
            for i, h in enumerate(sq.candidates[:depth]):
                if judged.get(h.doc_id, 0) > 0:
                    at_rank[i] += 1
                    relevant.append(conf[i])
                else:
                    other.append(conf[i])
    return RankPrior(at_rank / max(queries, 1), np.sort(relevant), np.sort(other))


def policy_grid(prior: RankPrior, depth: int, blend: float = 0.0) -> list:
    """Every policy `tune` tries: the full rerank first (the reference), each rule at the full depth, and each
    with a cap on how deep it may score (a maximum depth, as in the published rule)."""
    caps = [c for c in (5, 10, 20, 30, 50) if c < depth]
    grid: list = [FullRerank(depth=depth, chunk=16)] + [FullRerank(depth=c, chunk=16) for c in caps]
    for cap in (depth, *caps):
        for tau in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98):
            for chunk in (5, 10, 20):
                grid.append(Threshold(tau=tau, chunk=chunk, depth=cap))
            for k in (2, 3, 5):
                grid.append(TopKConfident(k=k, tau=tau, chunk=10, depth=cap))
        for epsilon in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0):
            for k in (1, 3, 5, 10):
                for first in (2, 4, 8):
                    grid.append(ResidualRisk(prior=prior, epsilon=epsilon, k=k, first_chunk=first, depth=cap,
                                             blend=blend))
    return grid


def describe(policy) -> dict:
    """A policy as a table row: its name and settings (not the `RankPrior`, which is data, not a setting)."""
    params = {k: v for k, v in asdict(policy).items() if k != "prior"}
    return {"policy": policy.name, **params}


def sweep(dev: list[ScoredSplit], calibration: Calibration, blend: float, grid: list) -> list[dict]:
    """Replay every policy of `grid` over the dev splits' cached scores at this calibration and blend: one row each,
    with its settings, mean metrics, pairs scored per query and the fraction of candidates scored."""
    rows = []
    for policy in grid:
        replays = [replay(d.scored, policy, calibration, blend) for d in dev]
        pairs = np.concatenate([r[1] for r in replays])
        candidates = sum(len(sq.candidates) for d in dev for sq in d.scored)
        rows.append({**describe(policy), **mean_metrics(dev, [r[0] for r in replays]),
                     "pairs_per_query": float(pairs.mean()), "fraction_scored": float(pairs.sum() / candidates)})
    return rows


def tune(model_dir: Path, dev: list[ScoredSplit], max_loss: float = 0.01, depth: int = 100) -> dict:
    """Choose blend and stopping policy on dev; write `operating_point.json` into `model_dir`."""
    calibration = Calibration.load(model_dir / CALIBRATION)
    # Up to 1.0, which is plain recall order: on dev the chosen blend is never worse than recall alone.
    blends = [round(float(b), 2) for b in np.arange(0.0, 1.001, 0.05)]
    full = FullRerank(depth=depth, chunk=16)
    by_blend = {b: sweep(dev, calibration, b, [full])[0] for b in blends}
    blend = max(blends, key=lambda b: (by_blend[b]["nDCG@10"], -b))
    prior = fit_prior(dev, calibration, depth)
    rows = sweep(dev, calibration, blend, policy_grid(prior, depth, blend))
    reference = rows[0]
    ok = [r for r in rows if r["nDCG@10"] >= (1 - max_loss) * reference["nDCG@10"]
          and r["RR@10"] >= (1 - max_loss) * reference["RR@10"]]
    best = min(ok, key=lambda r: (r["pairs_per_query"], -r["nDCG@10"]))
    published = [r for r in rows if r["policy"] == "threshold"]
    point = {
        "blend": blend, "max_loss": max_loss, "depth": depth, "chosen": best, "full_rerank": reference,
        "blend_sweep": {str(b): by_blend[b]["nDCG@10"] for b in blends},
        "best_published_rule": min([r for r in published if r in ok] or published,
                                   key=lambda r: (r["pairs_per_query"], -r["nDCG@10"])),
        # Each policy's cheapest point within the loss (for "full", the shallowest depth cap that is enough).
        "best_by_policy": {name: min((r for r in ok if r["policy"] == name),
                                     key=lambda r: (r["pairs_per_query"], -r["nDCG@10"]))
                           for name in sorted({r["policy"] for r in ok})},
        "prior": prior.as_dict(), "dev_sets": [d.name for d in dev], "sweep": rows,
    }
    (model_dir / OPERATING_POINT).write_text(json.dumps(point, indent=1))
    return point
