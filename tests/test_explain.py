from __future__ import annotations

import pytest

from earlyrank.engine.explain import explain, faithfulness, masks, remove_words, weighted_ridge


def test_weights_find_the_words_the_scorer_uses(fake_scorer):
    # FakeScorer's logit = (query words present in the passage) - 2: only "volcano" and "erupt" matter here.
    passage = "A volcano will erupt when magma under the ground rises, the old books say."
    result = explain(fake_scorer, "why does a volcano erupt", passage, num_samples=300, num_features=5, seed=1)
    top = [w.word for w in result.weights[:2]]
    assert set(top) == {"volcano", "erupt"} and all(w.weight > 0 for w in result.weights[:2])
    assert result.weights[2].weight == pytest.approx(0, abs=0.02)
    assert result.r2 > 0.8 and result.samples == 300
    assert result.confidence == pytest.approx(fake_scorer.score("why does a volcano erupt", [passage]).confidences[0])


def test_deterministic_for_a_seed(fake_scorer):
    a = explain(fake_scorer, "tea plant", "Tea is brewed from the tea plant leaves.", num_samples=50, seed=3)
    b = explain(fake_scorer, "tea plant", "Tea is brewed from the tea plant leaves.", num_samples=50, seed=3)
    assert a.weights == b.weights and a.r2 == b.r2


def test_faithfulness_top_words_matter_more_than_random(fake_scorer):
    passage = "Coffee is brewed from roasted coffee beans and contains caffeine, said the old farmer proudly."
    query = "what drink contains caffeine"
    result = explain(fake_scorer, query, passage, num_samples=200, seed=0)
    check = faithfulness(fake_scorer, query, passage, result, k=2)
    assert check["top_drop"] > check["random_drop"] + 0.05


def test_sampling_and_removal():
    import numpy as np

    keep = masks(5, 20, np.random.default_rng(0))
    assert keep[0].all() and not keep[1:].all(axis=1).any()
    assert remove_words("The cat, the hat.", {"the"}) == "The cat,  hat."
    coef, intercept, r2 = weighted_ridge(np.eye(3), np.array([1.0, 2.0, 3.0]), np.ones(3), alpha=1e-9)
    assert r2 == pytest.approx(1.0)


def test_limits(fake_scorer):
    with pytest.raises(ValueError, match="num_samples must be between 2 and 5000"):
        explain(fake_scorer, "q", "some words", num_samples=10**6)
    with pytest.raises(ValueError, match="no words"):
        explain(fake_scorer, "q", " ,. ")


def test_a_one_word_passage_is_explained_exactly(fake_scorer):
    """"capital of France" / "Paris": the word once got 0.0096 (R^2 0.09) where removing it cost 0.22."""
    scorer = type(fake_scorer)({"Paris": 0.5, "": -1.2})  # the word alone: logit 0.5; nothing left: -1.2
    result = explain(scorer, "capital of France", "Paris", num_samples=500)
    with_word, without = scorer.score("capital of France", ["Paris", ""]).confidences
    assert [w.word for w in result.weights] == ["Paris"]
    assert result.weights[0].weight == pytest.approx(with_word - without, abs=1e-9)
    assert result.r2 == pytest.approx(1.0) and result.samples == 2
    assert result.intercept == pytest.approx(without, abs=1e-9)


def test_a_short_passage_scores_every_subset_once(fake_scorer):
    import numpy as np

    from earlyrank.engine.explain import all_subsets

    subsets = all_subsets(3)
    assert subsets.shape == (8, 3) and subsets[0].all() and not subsets[-1].any()
    assert len({tuple(row) for row in subsets.tolist()}) == 8
    result = explain(fake_scorer, "volcano erupt", "volcano erupt now", num_samples=8)
    weights = {w.word: w.weight for w in result.weights}
    assert result.samples == 8 and result.r2 > 0.9 and weights["now"] == pytest.approx(0, abs=0.05)
    assert np.sign(weights["volcano"]) == np.sign(weights["erupt"]) == 1
