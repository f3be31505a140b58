"""Distillation from the bi-encoder: the teacher's scores, label-free groups, and the loss that trains on them."""

from __future__ import annotations

import random

import numpy as np
import pytest

from earlyrank.engine.distillation import (
    TEMPERATURE,
    add_teacher,
    distill_groups,
    distill_loss,
    keyword_query,
    teacher_scores,
    with_teacher,
)
from earlyrank.engine.training import TrainParams, batch_loss
from earlyrank.engine.training_data import Group
from earlyrank.indexes.corpus import load_corpus
from earlyrank.indexes.store import build_index, load_index


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    from tests.conftest import TINY

    return load_index(build_index(load_corpus(TINY / "corpus.jsonl"), tmp_path_factory.mktemp("d") / "idx",
                                  progress=False, corpus_name="tiny"))


def test_teacher_scores_are_the_cosines_of_the_stored_vectors(tiny_index):
    from sentence_transformers import SentenceTransformer

    from earlyrank.indexes.dense import default_model_path

    query = "Which animal hunts mice?"
    scores = teacher_scores(tiny_index, query, [0, 1, 2])
    model = SentenceTransformer(str(default_model_path()), device="cpu")
    texts = [d.full_text for d in tiny_index.docs[:3]]
    vectors = model.encode([query, *texts], normalize_embeddings=True)
    np.testing.assert_allclose(scores, vectors[1:] @ vectors[0], atol=1e-4)
    assert scores[0] == max(scores)  # the cat passage is the teacher's first


def test_with_teacher_scores_groups_of_index_passages_only(tiny_index):
    docs = tiny_index.docs
    known = Group("Which animal hunts mice?", docs[0].full_text, (docs[1].full_text, docs[2].full_text), "t")
    unknown = Group("q", "a passage in no index", (docs[1].full_text,), "t")
    scored, untouched = with_teacher([known, unknown], tiny_index)
    assert scored.teacher == teacher_scores(tiny_index, known.query, [0, 1, 2]) and scored.labelled
    assert untouched.teacher is None


def test_distill_groups_are_label_free_and_never_hold_their_own_or_excluded_passage(tiny_index):
    groups = distill_groups(tiny_index, 8, size=3, depth=12, rng=random.Random(0), exclude=frozenset({"d2"}),
                            min_words=3)
    assert groups
    by_text = {d.full_text: d for d in tiny_index.docs}
    for g in groups:
        passages = [by_text[p] for p in (g.positive, *g.negatives)]
        assert not g.labelled and g.source == "idx:distill" and len(g.teacher) == 3
        assert all(d.id != "d2" for d in passages)
        assert all(g.query not in d.full_text for d in passages)  # the question's own passage is left out
        assert g.teacher == teacher_scores(tiny_index, g.query, [tiny_index.position(d.id) for d in passages])
    with pytest.raises(ValueError, match="at least 2"):
        distill_groups(tiny_index, 1, size=1, depth=5, rng=random.Random(0))


def test_add_teacher_scores_the_groups_adds_label_free_ones_and_shuffles_by_the_seed(tiny_index):
    docs = tiny_index.docs
    labelled = [Group("Which animal hunts mice?", docs[0].full_text, (docs[1].full_text,), "t")]
    groups = add_teacher(labelled, [tiny_index], [4], dev_docs=frozenset({"d2"}), size=3, depth=12, seed=6)
    rng = random.Random(7)
    expected = with_teacher(labelled, tiny_index) + distill_groups(tiny_index, 4, size=3, depth=12, rng=rng,
                                                                   exclude=frozenset({"d2"}))
    rng.shuffle(expected)
    assert groups == expected and len(groups) > 1 and all(g.teacher is not None for g in groups)
    assert add_teacher(labelled, [tiny_index], [0], dev_docs=frozenset(), size=3, depth=12, seed=6) == \
        with_teacher(labelled, tiny_index)
    with pytest.raises(ValueError, match="one count per index"):
        add_teacher(labelled, [tiny_index], [1, 2], dev_docs=frozenset(), size=3, depth=12, seed=6)


def test_keyword_queries_keep_a_few_content_words_in_order():
    sentence = "The enzyme is strongly expressed in the left ventricle of adult mice."
    content = ["enzyme", "strongly", "expressed", "left", "ventricle", "adult", "mice"]
    for seed in range(20):
        words = keyword_query(sentence, random.Random(seed)).split()
        assert 2 <= len(words) <= 5
        assert words == [w for w in content if w in words]  # content words only, in the sentence's order
    assert keyword_query("It is what it was.", random.Random(0)) is None  # stop words only
    with pytest.raises(ValueError, match="shortest"):
        keyword_query(sentence, random.Random(0), shortest=3, longest=2)


def test_distill_groups_with_keywords_ask_keyword_queries(tiny_index):
    groups = distill_groups(tiny_index, 6, size=3, depth=12, rng=random.Random(1), min_words=3, keywords=1.0)
    titles = {d.title for d in tiny_index.docs if d.title}
    asked = [g.query for g in groups if g.query not in titles]
    assert asked and all(q == q.lower() and len(q.split()) <= 5 for q in asked)
    assert all(g.teacher == teacher_scores(tiny_index, g.query, [tiny_index.position(d.id) for d in
               [{x.full_text: x for x in tiny_index.docs}[p] for p in (g.positive, *g.negatives)]]) for g in groups)


def test_the_distill_loss_is_zero_only_when_the_student_ranks_as_the_teacher():
    import torch

    teacher = torch.tensor([[0.8, 0.5, 0.1]])
    assert distill_loss(teacher / TEMPERATURE + 3.0, teacher).item() == pytest.approx(0.0, abs=1e-6)  # shift-free
    assert distill_loss(torch.tensor([[0.0, 0.0, 0.0]]), teacher).item() > 0.1
    assert distill_loss(torch.tensor([[-1.0, 0.0, 1.0]]), teacher).item() > distill_loss(
        torch.tensor([[1.0, 0.0, -1.0]]), teacher).item()


def test_a_label_free_group_trains_on_the_teacher_alone():
    import torch

    teacher = (0.8, 0.5, 0.1)
    free = Group("q", "a", ("b", "c"), "t", teacher=teacher, labelled=False)
    matched = torch.tensor(teacher) / TEMPERATURE
    params = TrainParams(distill_weight=1.0)
    # The student matches the teacher: no loss, though the label loss would punish this "positive" ranking.
    assert batch_loss(matched.view(1, 3), [free], params).item() == pytest.approx(0.0, abs=1e-6)
    labelled = Group("q", "a", ("b", "c"), "t", teacher=teacher)
    assert batch_loss(matched.view(1, 3), [labelled], params).item() > 0.0
    # Without a distill weight, teacher scores are ignored and a label-free group adds nothing.
    assert batch_loss(torch.zeros(1, 3), [free], TrainParams()).item() == 0.0


def test_distill_groups_need_a_distill_weight():
    with pytest.raises(ValueError, match="distill_weight"):
        TrainParams(distill=10)
    with pytest.raises(ValueError, match="selection"):
        TrainParams(selection="best")
