"""The answer sentence: cutting a passage into sentences with offsets, and picking the one that answers."""

from __future__ import annotations

import pytest

from earlyrank.engine.answer_sentence import best_sentence, fused_ranks, shared_words
from earlyrank.indexes.sentences import sentence_spans, sentences


def test_sentences_are_cut_with_their_offsets():
    text = "  Paris is big. It is the capital of France!  Dr. who? 3 cats ran.  "
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ["Paris is big.", "It is the capital of France!", "Dr. who?",
                                             "3 cats ran."]
    assert spans[0] == (2, 15) and sentences("One. two") == ["One. two"]  # no capital after the stop: one sentence
    assert sentence_spans("   ") == [] and sentences("No stop at all") == ["No stop at all"]


def test_where_model_and_words_agree_that_sentence_is_chosen(fake_scorer):
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


def test_reciprocal_rank_fusion_by_hand():
    # model order s0 > s1 > s2, shared words s1 > s2 > s0: s1 gets 1/62 + 1/61, the most.
    fused = fused_ranks([0.9, 0.5, 0.1], [0.0, 3.0, 2.0])
    assert fused == pytest.approx([1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62])
    assert shared_words("Who wrote it, and when?", "It was written when? Who knows") == 3  # who, it, when


def test_the_fused_order_can_overrule_the_model(fake_scorer):
    fake_scorer.logits_by_prefix = {"Zebra": 3.0, "Lions hunt": 1.0, "Tigers": -1.0}
    passage = "Zebra stripes are black. Lions hunt zebras at night in Kenya. Tigers hunt at night in Kenya too."
    best = best_sentence(fake_scorer, "where do lions hunt at night", passage)
    # model: Zebra > Lions > Tigers; shared words: Lions (4) > Tigers (3) > Zebra (0): Lions is first fused.
    assert best is not None and best.text == "Lions hunt zebras at night in Kenya."
