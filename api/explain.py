"""``POST /v1/explain``: which words of a passage pushed the reranker's confidence up or down (LIME-style)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field, model_validator

from earlyrank.api.deps import Runtime, get_pipeline, get_runtime
from earlyrank.api.errors import ApiError, invalid
from earlyrank.api.openapi import CONTENT_PATTERN, limit
from earlyrank.api.routes import ERRORS, check_query_length, require_reranker, run_engine
from earlyrank.api.schemas import Body, Integer, QueryText, StrictRequest
from earlyrank.engine.explain import MAX_SAMPLES, Explanation, explain
from earlyrank.engine.pipeline import Pipeline

router = APIRouter()


class ExplainRequest(StrictRequest):
    """The body of ``POST /v1/explain``: a question and one passage, as text or as an indexed `doc_id`, and how many
    perturbed passages to score. Giving both or neither passage is a 422, and the schema says so (`oneOf`)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": [name], "properties": {name: {"type": "string"}}} for name in ("document", "doc_id")]})

    query: QueryText
    document: str | None = Field(None, min_length=1, description="The passage text (or give doc_id); at least one "
                                 "letter or digit.",
                                 json_schema_extra={"pattern": CONTENT_PATTERN,
                                                    **limit(maxLength="max_document_chars")})
    doc_id: str | None = Field(None, min_length=1, description="Id of an indexed passage (or give document).")
    num_samples: Integer = Field(150, ge=2, le=MAX_SAMPLES, description="Perturbed passages to score.")
    num_features: Integer = Field(10, ge=1, le=100, description="Words to return, strongest first.")
    seed: Integer = Field(0, ge=0, description="Random seed; the same seed gives the same explanation.")

    @model_validator(mode="after")
    def _one_passage(self) -> ExplainRequest:
        if (self.document is None) == (self.doc_id is None):
            raise ValueError("give exactly one of document or doc_id")
        return self


class WordWeightOut(Body):
    """One word of the passage and how much it moved the confidence."""

    word: str
    weight: float = Field(description="Change in confidence the word brings, in the local linear model.")


class ExplainResponse(Body):
    """Which words of the passage pushed the reranker's confidence up or down, strongest first, and how well the local
    linear model fits (LIME: Ribeiro et al., KDD 2016); `seconds` is the time taken."""

    query: str
    text: str
    confidence: float = Field(description="The reranker's calibrated confidence for the whole passage.")
    weights: list[WordWeightOut]
    intercept: float
    r2: float = Field(description="Weighted R^2 of the local model: how well the weights explain the scores.")
    samples: int
    seconds: float


def explain_response(e: Explanation) -> ExplainResponse:
    """The response body of an engine `Explanation` (its passage becomes `text`)."""
    return ExplainResponse(query=e.query, text=e.passage, confidence=e.confidence, intercept=e.intercept,
                           weights=[WordWeightOut(word=w.word, weight=w.weight) for w in e.weights], r2=e.r2,
                           samples=e.samples, seconds=e.seconds)


@router.post("/v1/explain", response_model=ExplainResponse, responses={**ERRORS, 404: ERRORS[422]})
async def explain_passage(body: ExplainRequest, pipeline: Pipeline = Depends(get_pipeline),
                          runtime: Runtime = Depends(get_runtime)) -> ExplainResponse:
    """Word weights for the confidence of (query, passage), from scoring perturbed copies of the passage."""
    settings = runtime.settings
    check_query_length(body.query, settings)
    scorer = require_reranker(pipeline)
    if body.doc_id is not None:
        try:
            text = pipeline.index.doc(body.doc_id).full_text
        except KeyError:
            raise ApiError(404, "not_found", f"doc_id: {pipeline.index.missing_passage(body.doc_id)}") from None
    else:
        text = body.document or ""
        if len(text) > settings.max_document_chars:
            raise invalid(("body", "document"), f"{len(text)} characters; the limit is "
                          f"{settings.max_document_chars}", "string_too_long")
    with runtime.limiter.slot():
        try:
            result = await run_engine(explain, scorer, body.query, text, body.num_samples, body.num_features,
                                      body.seed)
        except ValueError as e:
            raise invalid(("body", "document" if body.document else "doc_id"), str(e)) from e
    return explain_response(result)
