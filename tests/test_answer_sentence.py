"""The answer sentence: cutting a passage into sentences with offsets, and picking the one that answers."""

from __future__ import annotations

import pytest

from earlyrank.engine.answer_sentence import best_sentence, sentence_spans, sentences


def test_sentences_are_cut_with_their_offsets():
    text = "  Paris is big. It is the capital of France!  Dr. who? 3 cats ran.  "
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ["Paris is big.", "It is the capital of France!", "Dr. who?",
                                             "3 cats ran."]
    assert spans[0] == (2, 15) and sentences("One. two") == ["One. two"]  # no capital after the stop: one sentence
    assert sentence_spans("   ") == [] and sentences("No stop at all") == ["No stop at all"]


def test_the_best_sentence_is_the_one_the_scorer_rates_highest(fake_scorer):
    passage = "The city is old. Paris is the capital of France. It has a tower."
    best = best_sentence(fake_scorer, "capital of France", passage)
    assert best is not None and best.text == "Paris is the capital of France."
    assert passage[best.start:best.end] == best.text and (best.start, best.end) == (17, 48)
    assert best.confidence == pytest.approx(0.731059, abs=1e-6)  # FakeScorer: 3 query words - 2 = logit 1
    assert fake_scorer.calls == [3]  # one scoring call, one pair a sentence
    assert best_sentence(fake_scorer, "capital", "   ") is None


def test_ties_go_to_the_first_sentence(fake_scorer):
    best = best_sentence(fake_scorer, "nothing matches", "Alpha beta. Gamma delta.")
    assert best is not None and best.text == "Alpha beta." and best.start == 0
