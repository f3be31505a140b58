"""A question too long for the reranker to read whole is answered with a note saying so (it was cut in silence)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import FRANCE, build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline, question_cut_note


class WordPieceScorer(FakeScorer):
    """FakeScorer with the `CrossEncoder`'s tokenizing interface: one word piece per word, a 192-piece window."""

    max_length = 192

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(range(len(t.split()))) for t in texts]


def test_the_note_comes_past_the_half_of_the_window_a_question_keeps():
    scorer = WordPieceScorer()  # room 189: beside a long passage the question keeps 189 - 94 = 95 pieces
    assert question_cut_note(scorer, " ".join(["word"] * 95)) is None
    note = question_cut_note(scorer, " ".join(["word"] * 96))
    assert note is not None and "96 word pieces" in note and "only its first 95" in note
    assert question_cut_note(FakeScorer(), " ".join(["word"] * 500)) is None  # a scorer that does not tokenize


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    index = build_tiny_index(tmp_path_factory.mktemp("long-questions"))
    return TestClient(make_app(Pipeline(index, WordPieceScorer(), mode="bm25")))


def test_a_long_question_is_answered_with_the_note_and_a_short_one_without(client):
    long = FRANCE + " " + " ".join(["please"] * 120)
    body = client.post("/v1/answer", json={"query": long}).json()
    assert body["answer"] is not None, body
    assert len(body["warnings"]) == 1 and "only its first 95" in body["warnings"][0]
    assert client.post("/v1/answer", json={"query": FRANCE}).json()["warnings"] == []
