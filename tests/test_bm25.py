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


@pytest.mark.parametrize("k1, b", [(0.9, 0.4), (1.2, 0.75), (2.0, 1.0)])
def test_lucene_scores_are_the_formula_with_the_k1_1_numerator(k1, b):
    """idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), Lucene IDF, summed over the query's terms
    (a repeated one twice). bm25s' method "lucene" alone would divide every score by k1 + 1."""
    texts = ["ant ant bee", "bee cat", "cat cat cat dog", "dog"]  # lengths 3, 2, 4, 1: avgdl 2.5; N = 4
    index = BM25Index.build([f"d{i}" for i in range(4)], texts, BM25Params(k1=k1, b=b, stem=False))

    def weight(tf, dl, df):
        idf = np.log(1 + (4 - df + 0.5) / (df + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / 2.5))

    expected = [weight(2, 3, 1) + weight(1, 3, 2), weight(1, 2, 2) + 2 * weight(1, 2, 2), 2 * weight(3, 4, 2), 0]
    np.testing.assert_allclose(index.scores("ant bee cat cat"), expected, rtol=1e-6)


@pytest.mark.parametrize("k1, b", [(0.9, 0.4), (1.5, 0.75)])
def test_weights_are_those_bm25s_own_indexer_computes(tiny, k1, b):
    """bm25s' method "atire" (the tf part with the (k1 + 1) numerator) with idf_method "lucene", on our tokens."""
    import bm25s

    ids, texts, ds = tiny
    params = BM25Params(k1=k1, b=b)
    ours = BM25Index.build(ids, texts, params)
    theirs = bm25s.BM25(k1=k1, b=b, method="atire", idf_method="lucene")
    theirs.index([params.tokenizer()(t) for t in texts], show_progress=False)
    for query in [q.text for q in ds.queries.values()] + ["cats cats and mice"]:
        np.testing.assert_allclose(ours.scores(query), theirs.get_scores(params.tokenizer()(query)), rtol=1e-6)


def test_scores_are_those_of_the_index_before_bm25s(tiny):
    """Figures from the sparse-matrix BM25 this project had before bm25s (commit 8932631) on the tiny corpus:
    the learned fusion and every index on disk knew these scores."""
    ids, texts, _ = tiny
    before = {(0.9, 0.4, "capital of France"): {"d3": 3.9398789405822754, "d4": 1.745956540107727},
              (0.9, 0.4, "cats hunt mice"): {"d1": 5.510684013366699, "d10": 6.148863315582275},
              (1.2, 0.75, "capital of France"): {"d3": 4.1044535636901855, "d4": 1.8741590976715088}}
    for (k1, b, query), scores in before.items():
        index = BM25Index.build(ids, texts, BM25Params(k1=k1, b=b))
        got = {ids[i]: float(s) for i, s in enumerate(index.scores(query)) if s}
        assert got == pytest.approx(scores, rel=1e-6)


def test_saved_index_is_bm25s_own_and_loads_memory_mapped(tiny, tmp_path):
    import bm25s

    ids, texts, _ = tiny
    index = BM25Index.build(ids, texts)
    assert {p.name for p in index.save(tmp_path)} == {*BM25Index.FILES.values(), BM25Index.TF_FILE}
    again = BM25Index.load(tmp_path, ids, index.params)
    assert all(isinstance(again.model.scores[a], np.memmap) for a in ("data", "indices", "indptr"))
    theirs = bm25s.BM25.load(tmp_path, show_progress=False, **BM25Index.FILES)  # bm25s reads them as they are
    query = "capital of France"
    tokens = index.params.tokenizer()(query)
    np.testing.assert_array_equal(again.scores(query), theirs.get_scores(tokens))
    np.testing.assert_array_equal(again.scores(query), index.scores(query))
    with pytest.raises(ValueError, match=r"do not match the vocabulary \(\d+ terms\) and corpus \(11 passages\)"):
        BM25Index.load(tmp_path, ids[:11], index.params)


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


def test_a_corpus_of_stop_words_only_builds_and_matches_nothing_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # avgdl is 0 here
        index = BM25Index.build(["a", "b"], ["the a", "of"])
        assert index.search("the", 5) == [] and not index.scores("a").any()


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
