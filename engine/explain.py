"""LIME-style explanations of a cross-encoder confidence for one (question, passage) pair.

The passage's distinct words are the features. Each perturbation removes a random subset of them (all
occurrences), as LIME's text explainer does: first a number of words to remove, uniform in 1..d-1, then which
ones. The perturbed passages are scored in batches; a weighted ridge regression on the on/off masks, weighted
by an exponential kernel of the cosine distance to the original (width 25, LIME's default), gives each word's
push on the confidence. The fit's weighted R^2 says how far to trust the weights. Deterministic for a seed.

A passage short enough that every subset of its words fits in the sample budget (2^d <= num_samples) is
explained exactly instead: every subset is scored once and the fit is plain weighted least squares, so a
one-word passage's weight is exactly the confidence it adds (sampling and a ridge penalty once gave the word of
"Paris" 0.0096 where removing it cost 0.22).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from earlyrank.engine.language import reading_form
from earlyrank.engine.scoring import PairScorer

_TOKEN = re.compile(r"\w+|[^\w\s]+|\s+")
MAX_SAMPLES = 5000
MAX_WORDS = 1000


@dataclass(frozen=True)
class WordWeight:
    """One word of the passage and its weight: how much having the word moves the calibrated confidence (a difference of
    probabilities), in the local linear model."""

    word: str
    weight: float


@dataclass(frozen=True)
class Explanation:
    """Per-word weights (strongest first), the model's confidence, the local fit's R^2 and the cost."""

    query: str
    passage: str
    confidence: float
    weights: list[WordWeight]
    intercept: float
    r2: float
    samples: int
    seconds: float


def _features(passage: str) -> tuple[list[str], list[str], list[int]]:
    """Tokens (words, punctuation, spaces), the distinct words, and each token's word index (-1 if none)."""
    tokens = _TOKEN.findall(passage)
    vocab: dict[str, int] = {}
    index = []
    for t in tokens:
        if t[0].isalnum() or t[0] == "_":
            index.append(vocab.setdefault(t, len(vocab)))
        else:
            index.append(-1)
    return tokens, list(vocab), index


def perturb(tokens: list[str], index: list[int], keep: np.ndarray) -> str:
    """The passage with every occurrence of the words whose `keep` is False removed."""
    return "".join(t for t, i in zip(tokens, index, strict=True) if i < 0 or keep[i])


def masks(words: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """LIME's sampling: row 0 keeps everything; each other row removes a uniform number of random words."""
    out = np.ones((samples, words), dtype=bool)
    for row in range(1, samples):
        remove = rng.integers(1, words) if words > 1 else 1
        out[row, rng.choice(words, size=remove, replace=False)] = False
    return out


def all_subsets(words: int) -> np.ndarray:
    """Every keep/remove mask of `words` words, shape (2**words, words); row 0 keeps everything."""
    rows = np.arange(2**words - 1, -1, -1)[:, None]
    return ((rows >> np.arange(words)) & 1).astype(bool)


def weighted_ridge(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float = 1.0):
    """Ridge regression with sample weights and an unpenalised intercept: (coefficients, intercept, R^2)."""
    mean_x = np.average(x, axis=0, weights=w)
    mean_y = np.average(y, weights=w)
    xc, yc = x - mean_x, y - mean_y
    gram = xc.T @ (xc * w[:, None]) + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(gram, xc.T @ (w * yc))
    intercept = mean_y - mean_x @ coef
    residual = y - (x @ coef + intercept)
    total = np.sum(w * (y - mean_y) ** 2)
    r2 = 1 - np.sum(w * residual**2) / total if total > 0 else 1.0
    return coef, float(intercept), float(r2)


def explain(scorer: PairScorer, query: str, passage: str, num_samples: int = 500, num_features: int = 10,
            seed: int = 0, kernel_width: float = 25.0) -> Explanation:
    """Explain `scorer`'s confidence for (query, passage); see the module docstring. The query is read as the
    pipeline reads a question (`language.reading_form`), so the confidence explained is the one an answer shows."""
    if not 2 <= num_samples <= MAX_SAMPLES:
        raise ValueError(f"num_samples must be between 2 and {MAX_SAMPLES}, got {num_samples}")
    if num_features < 1:
        raise ValueError(f"num_features must be positive, got {num_features}")
    started = time.perf_counter()
    tokens, words, index = _features(passage)
    if not words:
        raise ValueError("the passage has no words to explain")
    if len(words) > MAX_WORDS:
        raise ValueError(f"the passage has {len(words)} distinct words; explanations are capped at {MAX_WORDS}")
    exact = 2 ** len(words) <= num_samples
    keep = all_subsets(len(words)) if exact else masks(len(words), num_samples, np.random.default_rng(seed))
    texts = [perturb(tokens, index, row) for row in keep]
    confidences = np.asarray(scorer.score(reading_form(query), texts).confidences, dtype=np.float64)
    on = keep.astype(np.float64)
    cosine = on.sum(axis=1) / np.sqrt(on.sum(axis=1) * len(words) + 1e-12)  # cosine to the all-ones row
    distance = (1 - cosine) * 100
    kernel = np.sqrt(np.exp(-(distance**2) / kernel_width**2))
    coef, intercept, r2 = weighted_ridge(on, confidences, kernel, alpha=0.0 if exact else 1.0)
    order = np.argsort(-np.abs(coef), kind="stable")[:num_features]
    return Explanation(query, passage, float(confidences[0]), [WordWeight(words[i], float(coef[i])) for i in order],
                       intercept, r2, len(keep), time.perf_counter() - started)


def remove_words(passage: str, drop: set[str]) -> str:
    """The passage without the given words (used by the faithfulness check)."""
    tokens, words, index = _features(passage)
    return perturb(tokens, index, np.array([w not in drop for w in words], dtype=bool))


def faithfulness(scorer: PairScorer, query: str, passage: str, explanation: Explanation, k: int = 3,
                 seed: int = 0, trials: int = 10) -> dict[str, float]:
    """Confidence drop from removing the k most positive words vs k random words (mean of `trials`)."""
    _, words, _ = _features(passage)
    strongest = sorted(explanation.weights, key=lambda w: -w.weight)[:k]
    top = {w.word for w in strongest if w.weight > 0}
    rng = np.random.default_rng(seed)
    randoms = [set(rng.choice(words, size=min(len(top), len(words)), replace=False)) for _ in range(trials)]
    texts = [remove_words(passage, top)] + [remove_words(passage, r) for r in randoms]
    conf = scorer.score(reading_form(query), texts).confidences
    return {"top_drop": float(explanation.confidence - conf[0]),
            "random_drop": float(explanation.confidence - np.mean(conf[1:])), "k": len(top)}
