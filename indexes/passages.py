"""Long documents become passages: whole sentences, overlapping, at most a given number of tokens each.

`passage_spans(text, size, overlap, measure)` is the one chunking rule, measured in word pieces of the
cross-encoder's tokenizer at index time (`WordPieces`) and in words for the rerank endpoints (`Words`):

- a text of at most `size` tokens is one passage, the whole text;
- a longer one is cut into passages of whole sentences (`indexes.sentences`), each as many as fit in `size`;
- each passage after the first starts with the last `overlap` sentences of the one before, as far as they take at
  most half the size and leave room for the next new sentence, so a fact that straddles a cut is read whole;
- a sentence longer than `size` is cut into pieces of at most `size` tokens, between words where it can be.

A passage is given by its character offsets ``(start, end)`` in the text: ``text[start:end]`` is the passage.

At index time (`Splitter`) the default size, 150 word pieces, lets a question of up to about 39 word pieces and a
passage share the cross-encoder's window of 192 (its inference.json): one forward pass reads the whole passage,
where a 5,000-word document was read in its first two windows only. A document's title is read with each of its
passages and is not counted in the size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

from earlyrank.indexes.sentences import sentence_spans

Span = tuple[int, int]


@dataclass(frozen=True)
class PassageParams:
    """How documents are split at index time: passages of at most `tokens` word pieces (0: never split), each
    starting with the last `overlap` sentences of the one before. ValueError for a negative value."""

    tokens: int = 150
    overlap: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.tokens, int) and isinstance(self.overlap, int)) or self.tokens < 0 or self.overlap < 0:
            raise ValueError(f"passage sizes must be integers >= 0, got tokens={self.tokens!r}, "
                             f"overlap={self.overlap!r}")


class Measure(Protocol):
    """How long texts are: `counts` gives each text's number of tokens; `tokens` gives one text's tokens as
    (start, end, word) triples, `word` numbering the words so that a cut can fall between two of them."""

    def counts(self, texts: Sequence[str]) -> list[int]: ...

    def tokens(self, text: str) -> list[tuple[int, int, int]]: ...


class Words:
    """Whitespace-separated words."""

    def counts(self, texts: Sequence[str]) -> list[int]:
        """How many words each text has."""
        return [len(t.split()) for t in texts]

    def tokens(self, text: str) -> list[tuple[int, int, int]]:
        """Each word of `text`: (start, end, its number)."""
        return [(m.start(), m.end(), i) for i, m in enumerate(re.finditer(r"\S+", text))]


class WordPieces:
    """Word pieces of a Hugging Face tokenizer file (the cross-encoder's tokenizer.json), with the `tokenizers`
    library alone: no model and no torch. Special tokens are not counted; truncation and padding are off."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.tokenizer = Tokenizer.from_file(str(self.path))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def counts(self, texts: Sequence[str]) -> list[int]:
        """How many word pieces each text is."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def tokens(self, text: str) -> list[tuple[int, int, int]]:
        """Each word piece of `text`: (start, end, the word it belongs to)."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        return [(a, b, -1 if w is None else w) for (a, b), w in zip(encoding.offsets, encoding.word_ids, strict=True)]


def cut_tokens(tokens: Sequence[tuple[int, int, int]], size: int) -> list[tuple[int, int, int]]:
    """Consecutive pieces of at most `size` tokens, each ending where a word ends unless one word is longer than
    `size`: (start, end, tokens) of each."""
    pieces, i = [], 0
    while i < len(tokens):
        j = min(i + size, len(tokens))
        if j < len(tokens):
            k = j
            while k > i and tokens[k][2] == tokens[k - 1][2]:
                k -= 1
            j = k if k > i else j
        pieces.append((tokens[i][0], tokens[j - 1][1], j - i))
        i = j
    return pieces


def sentence_units(text: str, size: int, measure: Measure) -> list[tuple[int, int, int]]:
    """The sentences of `text` as (start, end, tokens), a sentence longer than `size` cut into pieces."""
    spans = sentence_spans(text)
    units = []
    for (a, b), n in zip(spans, measure.counts([text[a:b] for a, b in spans]), strict=True):
        if n <= size:
            units.append((a, b, n))
        else:
            units.extend((a + s, a + e, m) for s, e, m in cut_tokens(measure.tokens(text[a:b]), size))
    return units


def pack(units: Sequence[tuple[int, int, int]], size: int, overlap: int) -> list[Span]:
    """Passages of consecutive `units` (start, end, tokens), as many as fit in `size` tokens each (at least one),
    each after the first opening with up to `overlap` units of the one before (see the module docstring)."""
    spans: list[Span] = []
    i = 0
    while True:
        j, total = i + 1, units[i][2]
        while j < len(units) and total + units[j][2] <= size:
            total += units[j][2]
            j += 1
        spans.append((units[i][0], units[j - 1][1]))
        if j == len(units):
            return spans
        k, carried = j, 0
        while (j - k < overlap and k - 1 > i and carried + units[k - 1][2] <= size // 2
               and carried + units[k - 1][2] + units[j][2] <= size):
            k -= 1
            carried += units[k][2]
        i = k


def passage_spans(text: str, size: int, overlap: int, measure: Measure, length: int | None = None) -> list[Span]:
    """The passages of `text`: ``[(0, len(text))]`` if it is at most `size` tokens long (`length`, if the caller
    has counted them), else sentence-aware overlapping passages (the module docstring says how)."""
    if size <= 0:
        raise ValueError(f"a passage size must be positive, got {size}")
    length = measure.counts([text])[0] if length is None else length
    if length <= size:
        return [(0, len(text))]
    units = sentence_units(text, size, measure)
    return pack(units, size, overlap) if units else [(0, len(text))]


class Splitter:
    """Splits documents at index time by `params`, in word pieces of the tokenizer file at `tokenizer` (whose model
    is `name`, by default the name of the file's folder)."""

    def __init__(self, params: PassageParams, tokenizer: Path, name: str | None = None):
        if params.tokens <= 0:
            raise ValueError("a splitter needs passages of at least one token; pass no splitter to keep "
                             "documents whole")
        self.params = params
        self.tokenizer = Path(tokenizer)
        self.name = name or self.tokenizer.parent.name
        if not self.tokenizer.is_file():
            raise FileNotFoundError(f"{self.tokenizer}: no tokenizer file to measure passages in")

    @cached_property
    def measure(self) -> WordPieces:
        return WordPieces(self.tokenizer)

    def identity(self) -> dict:
        """The tokenizer's model name and SHA-256, for the index's manifest."""
        return {"name": self.name, "sha256": hashlib.sha256(self.tokenizer.read_bytes()).hexdigest()}

    def split(self, texts: Sequence[str]) -> list[list[Span]]:
        """The passages of each text (one, the whole text, for a text within the size)."""
        lengths = self.measure.counts(texts)
        return [passage_spans(t, self.params.tokens, self.params.overlap, self.measure, n)
                for t, n in zip(texts, lengths, strict=True)]
