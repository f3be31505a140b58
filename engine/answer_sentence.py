"""The sentence of an answer passage most likely to hold the answer, with its character offsets.

The passage is cut into sentences (after '.', '!' or '?' followed by a space and a capital letter or digit:
good enough for prose), and the cross-encoder scores each (question, sentence) pair: a handful of short pairs,
one scoring call. The best-scoring sentence is the answer sentence. Measured on XQuAD test by
`benchmarks/answer_sentence.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from earlyrank.engine.scoring import PairScorer

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
MAX_SENTENCES = 64  # a longer passage is read in its first 64 sentences


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence of the passage: its text, its character offsets in the passage (``passage[start:end]``) and
    the cross-encoder's calibrated confidence for the question and this sentence alone, in [0, 1]."""

    text: str
    start: int
    end: int
    confidence: float


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each sentence of `text`, in order, without surrounding spaces."""
    spans, start = [], 0
    for cut in SENTENCE_END.finditer(text):
        spans.append((start, cut.start()))
        start = cut.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def sentences(text: str) -> list[str]:
    """The sentences of `text`, as `sentence_spans` cuts them."""
    return [text[a:b] for a, b in sentence_spans(text)]


def best_sentence(scorer: PairScorer, query: str, passage: str) -> AnswerSentence | None:
    """The sentence of `passage` the scorer rates highest for `query` (the first of equals); None if the passage
    has no text. One scoring call of at most `MAX_SENTENCES` pairs."""
    spans = sentence_spans(passage)[:MAX_SENTENCES]
    if not spans:
        return None
    scored = scorer.score(query, [passage[a:b] for a, b in spans])
    best = max(range(len(spans)), key=lambda i: (float(scored.confidences[i]), -i))
    a, b = spans[best]
    return AnswerSentence(passage[a:b], a, b, float(scored.confidences[best]))
