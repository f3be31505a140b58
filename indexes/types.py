"""The data model: documents, queries and ranked hits, as dataclasses (documents and queries frozen)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Document:
    """A document of the corpus, or one passage of a long one (`indexes.passages`); `metadata` holds the
    source's other fields (e.g. ``{"category": "billing"}``)."""

    id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def full_text(self) -> str:
        """Title and text as one string, the form both recall and the reranker read."""
        return f"{self.title}. {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Query:
    """A question, with whatever metadata its data set carries (e.g. XQuAD's answers)."""

    id: str
    text: str
    metadata: dict = field(default_factory=dict, hash=False, compare=False)


CONFIDENCE = "confidence"  # stage name of the calibrated relevance probability (`Hit.confidence`)
LOGIT = "logit"  # stage name of the cross-encoder's raw logit (`Hit.logit`)


@dataclass(frozen=True)
class Passage:
    """Where an indexed passage lies in its document: the document's id, the passage's number in it (from 0) and
    its character offsets, ``document.text[start:end]``. A document indexed whole is its own passage 0, from 0 to
    the end of its text; a long one is split at index time (`indexes.passages`)."""

    doc_id: str
    number: int
    start: int
    end: int


@dataclass(slots=True)
class Hit:
    """One ranked passage for one query; a value that no part of earlyrank changes once built.

    `doc_id` is the id of the indexed passage: the document's own id for a document indexed whole, ``DOCID#pN``
    for passage N of a document split at index time. `passage` says which document and where in it; the
    pipeline sets it (recall's and the reranker's own hits leave it None).

    Not ``frozen``: hits are built by the hundred on every query, and a frozen dataclass takes 2.7x as long
    to construct (1.9 against 0.7 microseconds here), a third of a BM25 query's time.

    `score` is the score the ranking was made by; `stage_scores` keeps every stage's score under its
    name (e.g. ``{"bm25": 12.1, "dense": 0.61, "rrf": 0.032, "confidence": 0.93}``).
    """

    doc_id: str
    score: float
    rank: int
    stage_scores: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    passage: Passage | None = field(default=None, hash=False, compare=False)

    @property
    def document_id(self) -> str:
        """The id of the document the passage comes from (`doc_id` itself when `passage` is not set)."""
        return self.passage.doc_id if self.passage is not None else self.doc_id

    @property
    def confidence(self) -> float | None:
        """The calibrated probability that the passage is relevant, in [0, 1]; None if it was not reranked."""
        return self.stage_scores.get(CONFIDENCE)

    @property
    def logit(self) -> float | None:
        """The cross-encoder's raw logit; None if it was not reranked."""
        return self.stage_scores.get(LOGIT)


class RecallMode(str, Enum):
    """How candidates are recalled. A str: it compares equal to, and serializes as, its value."""

    BM25 = "bm25"
    DENSE = "dense"
    HYBRID = "hybrid"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str) -> RecallMode:
        """The mode named `value`; ValueError naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown mode {value!r}; choose {', '.join(m.value for m in cls)}") from None
