"""A long document over /v1/rerank with the real cross-encoder: where the answer sits must not matter."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_api import build_tiny_index, make_app

from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.pipeline import Pipeline

pytestmark = pytest.mark.slow

FILLER = [f"The committee met on day {i} and discussed the budget, the schedule and the catering at length."
          for i in range(16)]
ANSWER = "Paris is the capital and largest city of France."


def test_an_answer_after_sixteen_filler_sentences_scores_as_it_does_first(tmp_path):
    """Issue 19: over /v1/rerank an answer after about 1,900 characters of filler scored 0.001, first 0.846."""
    app = make_app(Pipeline(build_tiny_index(tmp_path), CrossEncoder.load(), mode="bm25"), max_document_chars=10_000)
    first, late = " ".join([ANSWER, *FILLER]), " ".join([*FILLER, ANSWER])
    assert len(late) > 1_500
    with TestClient(app) as client:
        body = client.post("/v1/rerank", json={"query": "What is the capital of France?",
                                               "documents": [first, late]}).json()
    scores = {r["index"]: r["relevance_score"] for r in body["results"]}
    assert scores[0] > 0.5 and abs(scores[0] - scores[1]) <= 0.1, scores
