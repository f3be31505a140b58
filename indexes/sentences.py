"""The one sentence splitter: answer sentences (`engine.answer_sentence`), passages (`indexes.passages`) and the
training data's inverse-cloze groups all cut text with it.

A sentence ends after '.', '!' or '?' followed by a space and a capital letter or digit (optionally behind an
opening quote or bracket): good enough for prose.
"""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


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
