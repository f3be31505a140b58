"""The sentence of an answer passage most likely to hold the answer, with its character offsets.

The passage is cut into sentences by `indexes.sentences` (after '.', '!' or '?' followed by a space and a
capital letter or digit: good enough for prose). Two orders of the sentences are fused by reciprocal rank
(k = 60; Cormack et al., SIGIR 2009): the cross-encoder's confidence for each (question, sentence) pair (a
handful of short pairs, one scoring call) and the number of distinct words the sentence shares with the
question. Chosen on XQuAD dev over either order alone and the cross-encoder reading "title. sentence"
(docs/experiments/answer-sentence.md); measured by `benchmarks/answer_sentence.py`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from earlyrank.engine.scoring import PairScorer
from earlyrank.indexes.sentences import sentence_spans

WORD = re.compile(r"\w+")
RRF_K = 60
MAX_SENTENCES = 64  # a longer passage is read in its first 64 sentences


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence of the passage: its text, its character offsets in the passage (``passage[start:end]``) and
    the cross-encoder's calibrated confidence for the question and this sentence alone, in [0, 1]."""

    text: str
    start: int
    end: int
    confidence: float


def shared_words(query: str, sentence: str) -> int:
    """How many distinct lowercase words (``\\w+``) `sentence` shares with `query`."""
    return len(set(WORD.findall(query.lower())) & set(WORD.findall(sentence.lower())))


def fused_ranks(*orders: Sequence[float], k: int = RRF_K) -> list[float]:
    """Reciprocal-rank fusion of several scorings of the same items (higher is better in each; ties keep item
    order): ``sum over scorings of 1 / (k + rank)``, one value per item."""
    fused = [0.0] * len(orders[0])
    for values in orders:
        for rank, i in enumerate(sorted(range(len(values)), key=lambda i: (-values[i], i)), 1):
            fused[i] += 1 / (k + rank)
    return fused


def best_sentence(scorer: PairScorer, query: str, passage: str, limit: int = MAX_SENTENCES) -> AnswerSentence | None:
    """The sentence of `passage` that ranks first when the scorer's confidences and the words shared with `query`
    are fused (the first of equals), among its first `limit` sentences; None if the passage has no text. One
    scoring call of at most `limit` pairs; the returned confidence is the scorer's for that sentence."""
    spans = sentence_spans(passage)[:max(0, min(limit, MAX_SENTENCES))]
    if not spans:
        return None
    texts = [passage[a:b] for a, b in spans]
    confidences = [float(c) for c in scorer.score(query, texts).confidences]
    fused = fused_ranks(confidences, [float(shared_words(query, t)) for t in texts])
    best = max(range(len(spans)), key=lambda i: (fused[i], -i))
    a, b = spans[best]
    return AnswerSentence(texts[best], a, b, confidences[best])
