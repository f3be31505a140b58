"""The dev split by article and the window each long training passage is read in; no model is run."""

from __future__ import annotations

import random

import pytest

from earlyrank.engine.cross_encoder import window_starts
from earlyrank.engine.training import TrainParams
from earlyrank.engine.training_data import (
    Group,
    best_windows,
    self_supervised_groups,
    sentence_groups,
    sentences,
    split_dev,
)
from earlyrank.indexes.store import build_index, load_index
from earlyrank.indexes.types import Document, Query


def test_window_starts_match_the_slices_inference_reads():
    assert window_starts(10, 20, 4) == [0]  # fits one window
    assert window_starts(30, 20, 1) == [0]
    assert window_starts(30, 20, 4) == [0, 10]  # the last slice ends at the passage's end
    assert window_starts(100, 20, 3) == [0, 15, 30]  # a quarter of a width overlaps the slice before
    assert window_starts(100, 20, 9)[-1] == 80


def articles():
    """Twelve questions on four articles; q10 is judged on passages of two articles, which binds them."""
    titles = {f"{a}_{i}": a for a in "ABCD" for i in range(2)}
    qrels = {f"q{n}": {f"{'ABCD'[n % 4]}_{n % 2}": 1} for n in range(12)}
    qrels["q10"] = {"C_0": 1, "D_1": 1}
    return [Query(q, q) for q in qrels], qrels, titles


@pytest.mark.parametrize("seed", range(8))
def test_the_title_split_keeps_every_article_on_one_side(seed):
    queries, qrels, titles = articles()
    train, dev = split_dev(queries, qrels, 4, seed, titles)
    assert len(train) + len(dev) == 12 and len(dev) >= 4

    def seen(part):
        return {titles[d] for q in part for d in qrels[q.id]}

    assert not seen(train) & seen(dev)
    assert ("C" in seen(dev)) == ("D" in seen(dev))  # q10 binds C and D


def test_the_query_split_is_unchanged_without_titles():
    queries, qrels, _ = articles()
    train, dev = split_dev(queries, qrels, 4, 3)
    assert len(dev) == 4 and len(train) == 8


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from earlyrank.indexes.dense import default_model_path

    return AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)


def cutter(tokenizer, windows: int):
    """The windows a 48-token scorer with `windows` windows reads; no model is needed to cut passages."""
    from earlyrank.engine.calibration import Calibration
    from earlyrank.engine.cross_encoder import CrossEncoder

    return CrossEncoder(None, tokenizer, Calibration(), max_length=48, windows=windows)


FILLER = " ".join(f"filler{i} words here." for i in range(15))


def test_a_long_positive_is_cut_to_the_window_holding_the_question_words(tokenizer):
    question = "Which glacier feeds the lake?"
    passage = f"{FILLER} The Rhone glacier feeds the lake."
    short = "The lake is fed by a glacier."
    [group] = best_windows([Group(question, passage, (short, FILLER), "t")], cutter(tokenizer, 4))
    assert group.positive != passage and group.positive.endswith("The Rhone glacier feeds the lake.")
    assert len(tokenizer(question, group.positive)["input_ids"]) <= 48  # the window fits the pair
    assert group.negatives == (short, FILLER)  # short: whole; no question word anywhere: the head
    # One window is the head: the old behaviour.
    assert best_windows([Group(question, passage, (), "t")], cutter(tokenizer, 1))[0].positive == passage
    # Too few windows to reach the end: the best reachable one, or the head when none shares a word.
    assert best_windows([Group(question, passage, (), "t")], cutter(tokenizer, 2))[0].positive == passage


def test_sentences_split_prose_but_not_abbreviated_numbers():
    text = "The Rhine flows 1,230 km. It rises in the Alps! Does it reach the sea? Yes, at Rotterdam (see 3.2 below)."
    assert sentences(text) == ["The Rhine flows 1,230 km.", "It rises in the Alps!", "Does it reach the sea?",
                               "Yes, at Rotterdam (see 3.2 below)."]


@pytest.fixture(scope="module")
def article_index(tmp_path_factory):
    """A BM25 index of 3 articles cut into 2 paragraphs each, every paragraph of 3 long sentences."""
    docs = []
    for article in ("Rhine", "Alps", "Danube"):
        for p in range(2):
            text = " ".join(f"The {article} paragraph {p} sentence {s} says {article.lower()} things about water "
                            f"and stone number {p}{s}." for s in range(3))
            docs.append(Document(f"{article}_{p}", text, article))
    return load_index(build_index(docs, tmp_path_factory.mktemp("articles") / "idx", dense=False,
                                  progress=False, corpus_name="articles"))


def test_a_sentence_group_asks_with_one_sentence_for_the_rest_of_its_passage(article_index):
    groups = sentence_groups(article_index, 100, negatives=3, depth=10, rng=random.Random(0), keep=0.0)
    assert len(groups) == 18  # every sentence of every paragraph
    texts = {d.full_text: d for d in article_index.docs}
    for group in groups:
        own = next(d for d in article_index.docs if group.query in d.text)
        assert group.query not in group.positive
        assert group.positive == own.full_text.replace(" " + group.query, "").replace(group.query + " ", "")
        assert len(group.negatives) == 3 and own.full_text not in group.negatives
        assert all(n in texts for n in group.negatives)
        assert group.source == "idx:sentence"


def test_sentence_groups_keep_the_sentence_at_the_keep_rate_and_skip_excluded_passages(article_index):
    kept = sentence_groups(article_index, 100, negatives=3, depth=10, rng=random.Random(0), keep=1.0)
    assert all(g.query in g.positive for g in kept)
    excluded = frozenset({"Rhine_0", "Rhine_1"})
    groups = self_supervised_groups(article_index, 100, negatives=3, depth=10, rng=random.Random(0),
                                    kind="sentence", exclude=excluded)
    assert len(groups) == 12 and not any("Rhine" in g.query for g in groups)


def test_an_unknown_self_supervised_kind_is_refused(article_index):
    with pytest.raises(ValueError, match="sentence"):
        self_supervised_groups(article_index, 5, negatives=3, depth=10, rng=random.Random(0), kind="word")
    with pytest.raises(ValueError, match="self-supervised kind"):
        TrainParams(self_supervised_kind="words")
