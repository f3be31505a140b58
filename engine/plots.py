"""Plots (matplotlib, an optional extra: pip install earlyrank[plots]) written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'earlyrank[plots]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_diagram(curves: dict[str, np.ndarray], labels: np.ndarray, out: Path, bins: int = 15) -> Path:
    """Observed accuracy against mean confidence per bin, one line per set of confidences."""
    from earlyrank.engine.calibration import expected_calibration_error, reliability_table

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for name, conf in curves.items():
        rows = [r for r in reliability_table(conf, labels, bins) if r["count"]]
        ece = expected_calibration_error(conf, labels, bins)
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o",
                label=f"{name} (ECE {ece:.3f})")
    ax.set(xlabel="confidence", ylabel="fraction relevant", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability ({bins} bins, {labels.size} pairs)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def quality_vs_cost(curves: dict[str, list[tuple[float, float]]], reference: float, out: Path,
                    title: str, metric: str = "nDCG@10") -> Path:
    """One curve per policy of (pairs scored per query, metric), full rerank as a horizontal line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.axhline(reference, color="black", linestyle="--", linewidth=1, label="full rerank")
    ax.axhline(0.99 * reference, color="grey", linestyle=":", linewidth=1, label="99% of full rerank")
    for name, points in curves.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    ax.set(xlabel="cross-encoder pairs scored per query", ylabel=metric, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def confidence_histogram(answered: np.ndarray, missed: np.ndarray, out: Path, title: str) -> Path:
    """Top candidate's confidence for questions whose top answer was right vs wrong."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.linspace(0, 1, 21)
    ax.hist([answered, missed], bins=edges, label=[f"top-1 relevant ({len(answered)})",
                                                   f"top-1 not relevant ({len(missed)})"], stacked=False)
    ax.set(xlabel="calibrated confidence of the top candidate", ylabel="questions", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
