"""benchmarks/answer_sentence_reader.py: the sentence reader's training groups put the answer sentence first and
draw negatives that hold no answer; the folds keep a passage's questions together."""

from __future__ import annotations

import pytest
from conftest import load_program

program = load_program("benchmarks/answer_sentence_reader.py")
ReaderQuestion, reader_groups = program.ReaderQuestion, program.reader_groups

PASSAGE = ["Paris is the capital of France.", "It lies on the Seine.", "Its mayor is elected.",
           "The city has 2.1 million people.", "Tourists visit in summer.", "Bread is sold daily."]
OTHER = ["Rain falls from clouds.", "Clouds hold water.", "Snow is frozen rain.", "Hail can be large.",
         "Fog is a low cloud."]


def question(text: str, sentences: list[str], answer_at: set[int]) -> ReaderQuestion:
    return ReaderQuestion(text, sentences, [i in answer_at for i in range(len(sentences))])


def test_each_group_puts_the_first_answer_sentence_first_and_draws_negatives_that_hold_none():
    q = question("How many people live in Paris?", PASSAGE, {3, 5})
    group, _ = reader_groups([q, question("What falls?", OTHER, {0})], negatives=3)
    assert group.query == q.text and group.positive == PASSAGE[3]
    assert len(group.negatives) == 3 and len(set(group.negatives)) == 3
    assert set(group.negatives) <= {PASSAGE[i] for i in (0, 1, 2, 4)}  # never sentence 5, which holds an answer


def test_a_short_passage_is_padded_with_other_passages_sentences():
    short = question("What is the capital of France?", PASSAGE[:2], {0})
    groups = reader_groups([short, question("What falls?", OTHER, {0})], negatives=4)
    first = groups[0]
    assert first.negatives[0] == PASSAGE[1]  # its own sentence, then padding
    assert set(first.negatives[1:]) <= set(OTHER) and len(set(first.negatives)) == 4


def test_questions_without_an_answer_sentence_train_nothing_and_mismatched_labels_are_refused():
    assert reader_groups([question("Who?", PASSAGE, set())]) == []
    with pytest.raises(ValueError, match="2 holds for 6 sentences"):
        reader_groups([ReaderQuestion("Who?", PASSAGE, [True, False])])


def test_the_draw_is_fixed_by_the_seed():
    qs = [question("How many people live in Paris?", PASSAGE, {3}), question("What falls?", OTHER, {0})]
    assert reader_groups(qs, negatives=2, seed=1) == reader_groups(qs, negatives=2, seed=1)


def test_folds_are_by_passage():
    folds = program.passage_folds(["p1", "p2", "p1", "p3", "p2"] * 3, folds=2, seed=0)
    assert set(folds) == {"p1", "p2", "p3"} and set(folds.values()) <= {0, 1}


def test_too_few_sentences_to_pad_with_leaves_the_question_out_instead_of_looping():
    """With fewer distinct sentences elsewhere than negatives to draw, the padding loop never ended."""
    qs = [question("What is the capital of France?", PASSAGE[:2], {0}), question("What falls?", OTHER[:2], {0})]
    assert reader_groups(qs, negatives=4) == []
