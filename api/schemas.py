"""Request and response bodies of the earlyrank API, apart from the engine's dataclasses, with converters.

Requests are strict (no coercion: ``"5"`` is not an integer, though ``5.0``, JSON's same number, is), refuse
unknown fields and refuse text that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which JSON
allows) in any field, nested or not. Limits that depend on the settings (query length, candidate count) are
checked by the routes, not here, and written into the served schema by `api.openapi`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from earlyrank.api.openapi import CONTENT_PATTERN, limit
from earlyrank.engine.abstention import NO_CONFIDENT_ANSWER
from earlyrank.engine.pipeline import Answer
from earlyrank.engine.rerank import RerankResult, has_content
from earlyrank.engine.stopping import StopReason
from earlyrank.indexes.filters import FilterError, MetadataFilter
from earlyrank.indexes.passage_table import located
from earlyrank.indexes.types import Document, Hit, RecallMode

Mode = Annotated[RecallMode, Strict(False)]  # strict models still take the mode by its value
FilterScalar = str | bool | int | float | None
FilterValue = FilterScalar | Annotated[list[FilterScalar], Field(min_length=1)]  # a list: any of its values


def _has_content(text: str) -> str:
    if not has_content(text):
        raise ValueError("must contain at least one letter or digit")
    return text


QueryText = Annotated[str, Field(min_length=1, description="The question; at least one letter or digit.",
                                 json_schema_extra={"pattern": CONTENT_PATTERN,
                                                    **limit(maxLength="max_query_chars")}),
                      AfterValidator(_has_content)]


def _whole_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON has one number type, and JSON Schema's `integer` takes 5.0: read it as 5 (strict still refuses "5", 5.5).
# The validator wraps `int | None` whole: on a member of a union it would keep `ge` and `le` out of the schema.
Integer = Annotated[int, BeforeValidator(_whole_number)]
OptionalInteger = Annotated[int | None, BeforeValidator(_whole_number)]


def invalid_unicode(value: Any, where: str = "") -> tuple[str, int] | None:
    """Where in `value` (a string, or lists and objects of them, keys included) a string first fails to encode
    as UTF-8, and the character's position: ``invalid_unicode(["ok", "a\\ud800"]) == ("[1]", 1)``."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return where, e.start
        return None
    if isinstance(value, dict):
        items = [(f"{where} (a field name)", key) for key in value] + [(f"{where}.{k}", v) for k, v in value.items()]
        return next(filter(None, (invalid_unicode(v, w) for w, v in items)), None)
    if isinstance(value, list):
        return next(filter(None, (invalid_unicode(v, f"{where}[{i}]") for i, v in enumerate(value))), None)
    return None


class StrictRequest(BaseModel):
    """Every request body: strict types, no unknown fields, and only valid Unicode in every field."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _valid_unicode(cls, value: Any, info: ValidationInfo) -> Any:
        found = invalid_unicode(value)
        if found is not None:
            where, at = found
            raise PydanticCustomError(
                "string_unicode", "a lone surrogate (invalid Unicode) at character {at}{where}; send UTF-8 text",
                {"at": at, "where": f" of {info.field_name}{where}" if where else ""})
        return value


class Body(BaseModel):
    """Every response body: only the fields declared."""

    model_config = ConfigDict(extra="forbid")


class AnswerRequest(StrictRequest):
    """The body of ``POST /v1/answer``: a question, and overrides of the server's recall and stopping settings."""

    query: QueryText
    top_k: OptionalInteger = Field(None, ge=1, le=1000, description="Hits to return (default: the server's).")
    mode: Mode | None = Field(None, description="Recall mode (default: the server's).")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Stop reranking once a passage reaches this confidence (default: the "
        "server's).")
    max_candidates: OptionalInteger = Field(None, ge=1, description="Recalled candidates offered to the reranker.",
                                            json_schema_extra=limit(maximum="max_documents"))
    timeout_ms: OptionalInteger = Field(
        None, ge=1, le=600_000, description="Budget for reranking; a partial answer is marked `degraded`.")
    filter: dict[str, FilterValue] | None = Field(
        None, description="Recall only documents whose metadata has every field equal to its value, or to any value "
        "of a list: `{\"category\": [\"billing\", \"delivery\"], \"year\": 2024}`. Equality is by JSON type "
        "(2 equals 2.0, not \"2\"); a document's list matches if any item does; a field no document has matches "
        "nothing.", examples=[{"category": "billing"}])
    all_passages: bool = Field(False, description=(
        "Return every passage that ranks in the top k, several of one long document among them; by default, one "
        "hit per document, its best passage."))

    @field_validator("filter", mode="before")
    @classmethod
    def _valid_filter(cls, value: Any) -> Any:
        try:
            MetadataFilter.parse(value)
        except FilterError as e:
            raise PydanticCustomError("filter_invalid", "{reason}", {"reason": str(e)}) from None
        return value


class SearchRequest(AnswerRequest):
    """The body of ``POST /v1/search``: as for /v1/answer, and whether to rerank the recalled candidates at all."""

    rerank: bool = Field(False, description="Rerank the recalled candidates (else recall only).")


class HitOut(Body):
    """One ranked passage with every score it got: recall's score and rank, the reranker's logit and calibrated
    confidence, and each stage's score; and where the passage lies in its document."""

    doc_id: str = Field(description="The document's id.")
    passage: int = Field(description="Which passage of the document this is, from 0 (a long document is split "
                         "into passages when indexed; a short one is its own passage 0).")
    start: int = Field(description="Where the passage starts in the document's text (a character offset).")
    end: int = Field(description="Where it ends: `text` is the document's text from `start` to `end`.")
    passage_id: str = Field(description="The indexed passage's id: the document's id for a document indexed whole, "
                            "DOCID#pN for passage N of a long one (what /v1/explain's doc_id takes).")
    rank: int
    score: float = Field(description="The score the ranking was made by (-1 for candidates left unscored, -2 "
                         "for passages with no letter or digit).")
    title: str
    text: str = Field(description="The passage's text.")
    recall_score: float
    recall_rank: int
    confidence: float | None = Field(description="Calibrated probability of relevance; null if not scored.")
    logit: float | None = Field(description="Raw reranker logit; null if not scored.")
    stage_scores: dict[str, float] = Field(description="Every stage's score by name (bm25, dense, rrf, ...).")
    metadata: dict[str, Any] = Field(default_factory=dict, description=(
        "The document's other fields as indexed (what `filter` matches on)."))


class Passage(Body):
    """The answer passage and its calibrated confidence (null if it was not scored): its document's id, title and
    the passage's text, with the passage's number and offsets in the document's text."""

    id: str = Field(description="The document's id.")
    passage: int = Field(description="Which passage of the document this is, from 0.")
    start: int = Field(description="Where the passage starts in the document's text.")
    end: int = Field(description="Where it ends (exclusive).")
    title: str
    text: str = Field(description="The passage's text.")
    confidence: float | None


class SentenceOut(Body):
    """The answer passage's sentence most likely to hold the answer: its text, its character offsets in the
    passage's text (``answer.text[start:end]``; in the document's, add ``answer.start``) and the calibrated
    confidence of the question with that sentence."""

    text: str
    start: int
    end: int
    confidence: float


class AnswerResponse(Body):
    """The best passage for the question, the ranked hits, and what answering cost (pairs scored, seconds)."""

    query: str
    answer: Passage | None
    answer_sentence: SentenceOut | None = Field(
        None, description="The sentence of the answer's text most likely to hold the answer, with offsets.")
    warnings: list[str] = Field(default_factory=list, description=(
        "Why the answer may be missing or unreliable, e.g. a question in a script the model does not read."))
    answer_confidence: float | None = Field(
        None, description="Probability that the top passage answers the question (null if the model has no answer "
                          "gate); below the model's threshold the answer is withheld.")
    hits: list[HitOut]
    scored: int = Field(description="Pairs the reranker scored.")
    candidates: int = Field(description="Candidates recall offered.")
    stopped_early: bool
    reason: str = Field(description="Why reranking stopped (confident, exhausted, max_depth, deadline, "
                                    "no_candidates when recall found nothing, ...), or, unless the deadline cut "
                                    "reranking short, "
                                    "no_confident_answer when the answer was withheld.")
    degraded: bool = Field(description="True when the deadline cut reranking short.")
    seconds: float


class SearchResponse(Body):
    """The ranked hits for a query, recalled only or reranked, and what it cost (pairs scored, seconds)."""

    query: str
    mode: Mode
    reranked: bool
    hits: list[HitOut]
    scored: int
    candidates: int
    stopped_early: bool
    reason: str
    degraded: bool
    seconds: float


class ErrorDetail(Body):
    """One problem: where it is (`loc`, e.g. ["body", "query"]), what it is (`msg`) and its kind (`type`)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(Body):
    """The body of every 4xx and 5xx response: one sentence naming the field and the problem, its kind, and each problem
    in `detail`."""

    error: str = Field(description="What is wrong, naming the field.")
    error_type: str
    detail: list[ErrorDetail]


class StatusResponse(Body):
    """A health or readiness answer: "ok" or "ready"."""

    status: str


class InfoResponse(Body):
    """What this server runs: the model, the index and the settings."""

    model: dict[str, Any]
    index: dict[str, Any]
    settings: dict[str, Any]


def hit_out(hit: Hit, doc: Document) -> HitOut:
    """A recall hit or a reranked one (whose stage scores carry the recall score and rank); `doc` is its passage."""
    stages = dict(hit.stage_scores)
    where = located(hit.passage, doc)
    return HitOut(doc_id=where.doc_id, passage=where.number, start=where.start, end=where.end, passage_id=hit.doc_id,
                  rank=hit.rank, score=hit.score, title=doc.title, text=doc.text,
                  recall_score=stages.get("recall", hit.score), recall_rank=int(stages.get("recall_rank", hit.rank)),
                  confidence=hit.confidence, logit=hit.logit, stage_scores=stages, metadata=doc.metadata)


def withheld_reason(answer: Answer) -> str:
    """`answer.reason`, or ``no_confident_answer`` when the answer was withheld, unless reranking was cut short
    (``deadline``, ``client_gone``): then the cut is the reason, since with more time the gate may well answer."""
    cut = answer.reason in (StopReason.DEADLINE, StopReason.CLIENT_GONE)
    return NO_CONFIDENT_ANSWER if answer.abstained and not cut else str(answer.reason)


def answer_response(answer: Answer, doc: Callable[[str], Document], degraded: bool) -> AnswerResponse:
    """The answer, unless the top passage has no letter or digit (reranking put every real one above it) or its
    answer confidence is below the model's threshold (then `answer` is null, `reason` is
    ``no_confident_answer``, and the hits are still listed)."""
    best = None
    if answer.best is not None:
        where = located(answer.answer_passage, answer.best)
        best = Passage(id=where.doc_id, passage=where.number, start=where.start, end=where.end,
                       title=answer.best.title, text=answer.best.text, confidence=answer.confidence)
    sentence = answer.sentence
    sentence_out = (SentenceOut(text=sentence.text, start=sentence.start, end=sentence.end,
                                confidence=sentence.confidence) if best is not None and sentence else None)
    return AnswerResponse(query=answer.query, answer=best, answer_sentence=sentence_out,
                          hits=[hit_out(h, doc(h.doc_id)) for h in answer.hits],
                          scored=answer.scored, candidates=answer.candidates, stopped_early=answer.stopped_early,
                          reason=withheld_reason(answer),
                          warnings=[w for w in (answer.warning, answer.note) if w],
                          answer_confidence=answer.answer_confidence, degraded=degraded, seconds=answer.seconds)


def search_response(query: str, mode: Mode, hits: list[Hit], doc: Callable[[str], Document],
                    result: RerankResult | None, degraded: bool, seconds: float) -> SearchResponse:
    """Recall-only when `result` is None; else the reranked hits and what reranking cost."""
    return SearchResponse(
        query=query, mode=mode, reranked=result is not None, hits=[hit_out(h, doc(h.doc_id)) for h in hits],
        scored=result.scored if result else 0, candidates=result.candidates if result else len(hits),
        stopped_early=result.stopped_early if result else False,
        reason=result.reason if result else "recall_only", degraded=degraded, seconds=seconds)
