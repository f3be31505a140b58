from __future__ import annotations

import numpy as np
import pytest

from earlyrank.engine.datasets import load_dataset
from earlyrank.indexes.bm25 import BM25Index, BM25Params, RankBM25Index
from earlyrank.indexes.tokenize import tokenize


def test_tokenize_lowercases_drops_stop_words_and_stems():
    assert tokenize("The Runners were running!") == ["runner", "were", "run"]
    assert tokenize("The Runners", stem=False) == ["runners"]
    assert tokenize("The Runners", stem=False, stopwords=False) == ["the", "runners"]


@pytest.fixture(scope="module")
def tiny():
    ds = load_dataset("tests/data/tiny")
    return [d.id for d in ds.corpus], [d.full_text for d in ds.corpus], ds


def test_hand_checked_rankings(tiny):
    ids, texts, ds = tiny
    index = BM25Index.build(ids, texts)
    top = {q.id: [h.doc_id for h in index.search(q.text, 3)] for q in ds.queries.values()}
    assert top["q1"] == ["d3", "d4"]  # "capital" and "france" only in d3; "capital" also in d4
    assert top["q2"] == ["d1", "d10", "d2"]  # d1 has animals+hunt+mice; d10 hunt+mice; d2 animals
    assert top["q4"] == ["d8"]  # caffeine appears once
    hits = index.search("capital", 5)
    assert [h.rank for h in hits] == [1, 2] and hits[0].stage_scores["bm25"] == hits[0].score


def test_lucene_idf_by_hand():
    # Two docs; "bee" occurs in both (df=2, N=2); "ant" in one: idf = ln(1 + 1.5/1.5) = ln 2.
    index = BM25Index.build(["x", "y"], ["ant bee", "bee cat"], BM25Params(k1=1.2, b=0.0, stem=False))
    scores = index.scores("ant")
    # b=0: tf part = tf*(k1+1)/(tf+k1) = 2.2/2.2 = 1
    assert scores[0] == pytest.approx(np.log(2.0), rel=1e-6) and scores[1] == 0
    assert index.scores("bee")[0] == pytest.approx(np.log(1 + 0.5 / 2.5), rel=1e-6)


@pytest.mark.parametrize("epsilon", [0.0, 0.25])
def test_okapi_matches_rank_bm25_scores_including_negative_idf_floor(epsilon):
    # "common" is in 4 of 5 documents, so its Okapi IDF is negative and floored at epsilon * mean IDF.
    texts = ["common alpha", "common beta beta", "common gamma alpha", "common delta", "epsilon zeta"]
    ids = [f"d{i}" for i in range(len(texts))]
    params = BM25Params(idf="okapi", epsilon=epsilon, k1=1.5, b=0.75)
    ours = BM25Index.build(ids, texts, params)
    reference = RankBM25Index(ids, texts, params)
    for query in ["common alpha", "beta", "common", "zeta alpha common"]:
        np.testing.assert_allclose(ours.scores(query), reference.scores(query), rtol=1e-5, atol=1e-6)


def test_same_top10_as_rank_bm25_on_fixture(tiny):
    ids, texts, ds = tiny
    params = BM25Params(idf="okapi")
    ours, reference = BM25Index.build(ids, texts, params), RankBM25Index(ids, texts, params)
    for q in ds.queries.values():
        assert [h.doc_id for h in ours.search(q.text, 10)] == [h.doc_id for h in reference.search(q.text, 10)]


def test_save_load_round_trip(tiny, tmp_path):
    ids, texts, _ = tiny
    index = BM25Index.build(ids, texts)
    index.save(tmp_path)
    again = BM25Index.load(tmp_path, ids, index.params)
    np.testing.assert_array_equal(index.scores("capital of Germany"), again.scores("capital of Germany"))


def test_bad_arguments():
    index = BM25Index.build(["a"], ["hello world"])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search("hello", 0)
    with pytest.raises(ValueError, match="idf must be"):
        BM25Params(idf="bm42")
    assert index.search("unknown words", 5) == []


def test_unicode_spellings_of_the_same_words_match_at_index_and_query_time():
    """A decomposed "Zürich café" once tokenized into "zu rich cafe": the query "café" missed it and "rich"
    found it."""
    from earlyrank.indexes.tokenize import Tokenizer

    plain = Tokenizer(stem=False, stopwords=False)
    decomposed = "Zu\u0308rich cafe\u0301"
    assert plain(decomposed) == plain("Zürich café") == ["zürich", "café"]
    assert plain("ＡＢＣ Straße") == plain("abc STRASSE") == ["abc", "strasse"]
    index = BM25Index.build(["d1", "d2"], [decomposed, "A rich uncle"], BM25Params())
    assert [h.doc_id for h in index.search("café", 2)] == ["d1"]
    assert [h.doc_id for h in index.search("rich", 2)] == ["d2"]


def test_a_word_keeps_the_combining_marks_case_folding_leaves_in_it():
    from earlyrank.indexes.tokenize import Tokenizer

    assert Tokenizer(stem=False, stopwords=False)("İstanbul is big") == ["i\u0307stanbul", "is", "big"]
