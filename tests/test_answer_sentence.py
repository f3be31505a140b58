"""The answer sentence: cutting a passage into sentences with offsets, and picking the one that answers."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from earlyrank.engine.answer_sentence import best_sentence, fused_ranks, shared_words, weighted_overlap
from earlyrank.indexes.sentences import sentence_spans, sentences


def test_sentences_are_cut_with_their_offsets():
    text = "  Paris is big. It is the capital of France!  Dr. who? 3 cats ran.  "
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ["Paris is big.", "It is the capital of France!", "Dr. who?",
                                             "3 cats ran."]
    assert spans[0] == (2, 15) and sentences("One. two") == ["One. two"]  # no capital after the stop: one sentence
    assert sentence_spans("   ") == [] and sentences("No stop at all") == ["No stop at all"]


def words(text: str) -> list[str]:
    return text.lower().replace(".", " ").split()


def test_the_sentence_whose_shared_terms_weigh_most_is_chosen(fake_scorer):
    passage = "The city is old. Paris is the capital of France. It has a tower."
    idf = {"capital": 2.0, "of": 0.1, "france": 1.5, "city": 0.5}
    best = best_sentence(idf, words, passage, fake_scorer, "capital of France")
    assert best is not None and best.text == "Paris is the capital of France."
    assert passage[best.start:best.end] == best.text and (best.start, best.end) == (17, 48)
    assert best.confidence == pytest.approx(0.731059, abs=1e-6)  # FakeScorer: 3 query words - 2 = logit 1
    assert fake_scorer.calls == [1]  # the chosen sentence alone is scored, for its confidence
    assert best_sentence(idf, words, "   ", fake_scorer, "capital") is None
    assert best_sentence(idf, words, passage).confidence == 0.0  # no scorer: no model call, no confidence


def test_one_rare_shared_term_outweighs_two_common_ones():
    # Counting shared words picks the first sentence (2 against 1); the rare term's IDF picks the second.
    idf = {"when": 0.2, "did": 0.2, "zeppelin": 3.0}
    passage = "When did it start? The zeppelin flew."
    best = best_sentence(idf, words, passage)
    assert best is not None and best.text == "The zeppelin flew."
    assert shared_words("when did the zeppelin fly", "When did it start?") == 2
    assert weighted_overlap(idf, ["zeppelin", "zeppelin", "flew"]) == 3.0  # distinct terms, unknown ones weigh 0


def test_ties_go_to_the_first_sentence():
    best = best_sentence({"nothing": 1.0}, words, "Alpha beta. Gamma delta.")
    assert best is not None and best.text == "Alpha beta." and best.start == 0


def test_the_bm25_index_gives_each_question_term_its_idf():
    from earlyrank.indexes.bm25 import BM25Index, BM25Params

    index = BM25Index.build(["a", "b", "c"], ["zebras run fast", "zebras sleep", "lions hunt zebras"])
    idf = index.term_idf("Do zebras hunt? unicorns")
    # Lucene IDF log(1 + (N - df + 0.5) / (df + 0.5)) with N = 3: "zebra" in 3 passages, "hunt" in 1.
    assert idf == pytest.approx({"zebra": math.log(1 + 0.5 / 3.5), "hunt": math.log(1 + 2.5 / 1.5)})
    assert index.tokenize("Zebras hunting") == ["zebra", "hunt"]
    okapi = BM25Index.build(["a", "b", "c"], ["zebras run fast", "zebras sleep", "lions hunt zebras"],
                            BM25Params(idf="okapi"))
    # Okapi's negative IDF is floored at epsilon times the mean IDF of every term, not of the question's.
    full = [math.log((3 - df + 0.5) / (df + 0.5)) for df in (1, 1, 3, 1, 1, 1)]  # run fast zebra sleep lion hunt
    floor = 0.25 * sum(full) / len(full)
    assert okapi.term_idf("zebras") == pytest.approx({"zebra": floor})


def test_reciprocal_rank_fusion_by_hand():
    # model order s0 > s1 > s2, shared words s1 > s2 > s0: s1 gets 1/62 + 1/61, the most.
    fused = fused_ranks([0.9, 0.5, 0.1], [0.0, 3.0, 2.0])
    assert fused == pytest.approx([1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62])
    assert shared_words("Who wrote it, and when?", "It was written when? Who knows") == 3  # who, it, when


def test_without_a_shared_weighed_term_the_cross_encoder_chooses(fake_scorer):
    fake_scorer.logits_by_prefix = {"Alpha": -1.0, "Gamma": 2.0}
    best = best_sentence({"the": 0.0}, words, "Alpha beta. Gamma delta.", fake_scorer, "what is the")
    assert best is not None and best.text == "Gamma delta." and fake_scorer.calls == [2]
    assert best.confidence == pytest.approx(0.880797, abs=1e-6)  # sigmoid(2)
    assert weighted_overlap({"x": -0.07, "y": 1.0}, ["x", "y"]) == 1.0  # a negative IDF counts as 0


def test_the_learned_sentence_ranker_picks_by_a_fit_that_never_saw_the_question():
    """benchmarks/answer_sentence_ranker.py: when one feature marks the answer sentence in every question, the
    cross-validated ranker learns it and picks that sentence, wherever it sits; the answer type fires only for a
    question asking for a number and a sentence holding a digit."""
    import numpy as np
    from conftest import load_program

    program = load_program("benchmarks/answer_sentence_ranker.py")
    rng = np.random.default_rng(0)
    features, labels, answers = [], [], []
    for _ in range(50):
        n = int(rng.integers(3, 7))
        answer = int(rng.integers(0, n))
        x = rng.normal(size=(n, len(program.FEATURES)))
        x[:, 5] = 0.0
        x[answer, 5] = 1.0  # the answer type marks the answer sentence
        features.append(x)
        labels.append((np.arange(n) == answer).astype(int))
        answers.append(answer)
    assert program.cross_validated_choice(features, labels, list(range(len(program.FEATURES)))) == answers
    assert program.NUMERIC_QUESTION.search("How many points did the Panthers defense surrender?")
    assert program.NUMERIC_QUESTION.search("Who won the game?") is None


def test_the_weighted_overlap_is_the_same_under_every_hash_seed():
    # A plain sum over the set of terms adds in an order that changes with PYTHONHASHSEED, and 0.1 + 0.2 + 0.3 + 0.7
    # rounds differently in different orders: two tied sentences were then chosen differently run to run.
    program = ("from earlyrank.engine.answer_sentence import weighted_overlap; "
               "print(repr(weighted_overlap({'a': 0.1, 'b': 0.2, 'c': 0.3, 'd': 0.7}, ['a', 'b', 'c', 'd'])))")
    values = {subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip() for seed in range(8)}
    assert values == {"1.3"}
