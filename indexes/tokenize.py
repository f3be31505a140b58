"""The one tokenizer every BM25 backend shares.

``tokenize("The Runners ran!")`` normalizes the text (Unicode NFKC, then case folding: a decomposed "café" and
"CAFÉ" read as "café", full-width "ＡＢＣ" as "abc", "Straße" as "strasse"), splits on Unicode word characters
(``\\w+``), optionally drops English stop words (Lucene's default English list, the one Pyserini's BM25
baselines use) and optionally applies the Snowball English stemmer (PyStemmer). With the defaults the result is
``["runner", "ran"]``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

# A word: word characters, with any combining marks that case folding leaves inside it (İ folds to i + U+0307).
_WORD = re.compile(r"\w(?:\w|[\u0300-\u036f])*", re.UNICODE)

# Lucene's EnglishAnalyzer default stop set (33 words).
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)


def normalize(text: str) -> str:
    """NFKC, then case folding: one spelling for the usual Unicode variants of the same words (composed or
    decomposed accents, full-width letters, case), at index time and at query time alike (without it, a
    decomposed "Zürich" split into "zu" and "rich"). Not accent folding: "café" and "cafe" stay different."""
    return unicodedata.normalize("NFKC", text).casefold()


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer: a C Snowball stemmer, light to import

    return Stemmer.Stemmer("english")


@dataclass(frozen=True)
class Tokenizer:
    """Lowercase word tokenizer with optional stop-word removal and English stemming."""

    stem: bool = True
    stopwords: bool = True
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __call__(self, text: str) -> list[str]:
        words = _WORD.findall(normalize(text))
        if self.stopwords:
            words = [w for w in words if w not in ENGLISH_STOP_WORDS]
        if not self.stem:
            return words
        cache = self._cache
        unseen = [w for w in set(words) if w not in cache]
        if unseen:
            cache.update(zip(unseen, _stemmer().stemWords(unseen), strict=True))
        return [cache[w] for w in words]

    def params(self) -> dict[str, bool]:
        """The options as a dict: ``{"stem": ..., "stopwords": ...}``."""
        return {"stem": self.stem, "stopwords": self.stopwords}


def tokenize(text: str, stem: bool = True, stopwords: bool = True) -> list[str]:
    """Tokenize one text; see the module docstring. Prefer a shared `Tokenizer` for many texts."""
    return Tokenizer(stem=stem, stopwords=stopwords)(text)
