"""Questions in a script the model cannot read get no answer and a clear warning."""

from __future__ import annotations

import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import FRANCE, build_tiny_index, make_app

from earlyrank.engine.language import non_latin_share, unreadable_warning
from earlyrank.engine.pipeline import Pipeline


def test_the_share_of_non_latin_letters_by_hand():
    assert non_latin_share("What is the capital of France?") == 0.0
    assert non_latin_share("法国的首都是哪里") == 1.0
    assert non_latin_share("Wie heißt die Hauptstadt?") == 0.0  # German is Latin script: not caught here
    assert non_latin_share("Paris 巴黎") == pytest.approx(2 / 7)
    assert non_latin_share("123 ???") == 0.0 and unreadable_warning("123 ???") is None
    assert "English only" in unreadable_warning("Какая столица Франции?")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    index = build_tiny_index(tmp_path_factory.mktemp("language"))
    return TestClient(make_app(Pipeline(index, FakeScorer(), mode="bm25")))


def test_a_chinese_question_gets_no_answer_and_a_warning(client):
    body = client.post("/v1/answer", json={"query": "法国的首都是哪里 Paris"}).json()
    assert body["answer"] is None and body["reason"] == "no_confident_answer"
    assert len(body["warnings"]) == 1 and "English only" in body["warnings"][0]


def test_an_english_question_has_no_warning(client):
    body = client.post("/v1/answer", json={"query": FRANCE}).json()
    assert body["answer"] is not None and body["warnings"] == []


def test_compatibility_forms_of_latin_letters_are_latin():
    """"ｗａｒｒａｎｔｙ length" was withheld as 57% non-Latin: fullwidth letters are named FULLWIDTH LATIN ..., and
    mathematical ones MATHEMATICAL BOLD ..., so the name test missed them; the kind is every compatibility form."""
    assert non_latin_share("ｗａｒｒａｎｔｙ length") == 0.0
    assert non_latin_share("𝐰𝐚𝐫𝐫𝐚𝐧𝐭𝐲 ﬁle") == 0.0
    assert unreadable_warning("ｗａｒｒａｎｔｙ length") is None
    assert non_latin_share("ｗａｒ 法国") == pytest.approx(2 / 5)  # other scripts still count
