"""Distillation from the bi-encoder: teacher scores for training groups, and label-free groups to carry them.

The teacher is the dense recall model (all-MiniLM-L6-v2): its cosine between a question and a passage, with the
passage vectors read from the index (stored at build time, so only the questions are encoded). The student
cross-encoder learns to reproduce the teacher's ranking of each group (`distill_loss`) besides, or instead of,
the labels: a knowledge-distillation set-up (Hinton et al., 2015, "Distilling the Knowledge in a Neural
Network"; for rankers, Hofstätter et al., 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
Knowledge Distillation"). The aim is that the student keeps what the bi-encoder learnt from its billion pairs of
many kinds, which fine-tuning on two small domains alone loses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from earlyrank.engine.training_data import Group
from earlyrank.indexes.sentences import sentences
from earlyrank.indexes.store import LoadedIndex

TEMPERATURE = 0.05  # cosine / 0.05: the scale (20) all-MiniLM-L6-v2 was trained with
_WORD = re.compile(r"[^\W_][\w\-']*")


def keyword_query(sentence: str, rng: random.Random, shortest: int = 2, longest: int = 5) -> str | None:
    """A web-search-like query made from `sentence`: between `shortest` and `longest` of its content words
    (scikit-learn's English stop-word list removed), lowercased, in their order in the sentence; None if the
    sentence has fewer than `shortest` content words. E.g. "The enzyme is expressed in the left ventricle of mice"
    may give "enzyme left ventricle". ValueError if `shortest` < 1 or `longest` < `shortest`."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    if shortest < 1 or longest < shortest:
        raise ValueError(f"need 1 <= shortest <= longest, got shortest={shortest}, longest={longest}")
    words = [w.lower() for w in _WORD.findall(sentence)]
    content = [w for w in words if w not in ENGLISH_STOP_WORDS and len(w) > 1]
    if len(content) < shortest:
        return None
    size = rng.randint(shortest, min(longest, len(content)))
    return " ".join(content[i] for i in sorted(rng.sample(range(len(content)), size)))


def teacher_scores(index: LoadedIndex, query: str, positions: Sequence[int]) -> tuple[float, ...]:
    """The bi-encoder's cosine between `query` and the documents at `positions` of `index`, shape (len(positions),);
    IndexStoreError if the index has no dense part."""
    dense = index.retriever("dense")
    vectors = dense.vectors(np.asarray(positions, dtype=np.int64))
    return tuple(float(x) for x in vectors @ dense.query_vector(query))


def with_teacher(groups: list[Group], index: LoadedIndex) -> list[Group]:
    """`groups` with teacher scores attached where every passage of the group is a document of `index` (as the
    labelled groups' passages are, verbatim); the others are returned unchanged."""
    position = {d.full_text: i for i, d in enumerate(index.docs)}
    out = []
    for g in groups:
        passages = (g.positive, *g.negatives)
        if g.teacher is None and all(p in position for p in passages):
            g = replace(g, teacher=teacher_scores(index, g.query, [position[p] for p in passages]))
        out.append(g)
    return out


def distill_groups(index: LoadedIndex, count: int, *, size: int, depth: int, rng: random.Random,
                   exclude: frozenset[str] = frozenset(), min_words: int = 6, max_words: int = 40,
                   keywords: float = 0.0) -> list[Group]:
    """Up to `count` label-free groups of `size` passages, each with the teacher's scores.

    The question is one sentence of a corpus passage (inverse cloze), or, for a third of the groups where the
    corpus has titles, a passage's title. Its candidates are `size` passages drawn from the hybrid top `depth`
    for it, its own passage, its article's other passages (same title) and any in `exclude` (e.g. dev
    passages) left out, so that the teacher ranks by
    meaning rather than by a copy of the question. With chance `keywords` a sentence question is cut to a few of its
    content words (`keyword_query`), so that some questions look like web-search queries. ValueError if `size` < 2.
    """
    if size < 2:
        raise ValueError(f"a distillation group needs at least 2 passages, got size={size}")
    hybrid = index.retriever("hybrid")
    usable = [d for d in index.docs if d.id not in exclude]
    titled = [d for d in usable if d.title]
    groups: list[Group] = []
    for _ in range(count * 3):  # some draws yield no question or too few candidates
        if len(groups) >= count or not usable:
            break
        doc = rng.choice(usable)
        if titled and rng.random() < 1 / 3:
            doc = rng.choice(titled)
            question = doc.title
        else:
            choices = [s for s in sentences(doc.text) if min_words <= len(s.split()) <= max_words]
            if not choices:
                continue
            question = rng.choice(choices)
            if keywords and rng.random() < keywords:
                cut = keyword_query(question, rng)
                if cut is None:
                    continue
                question = cut
        hits = [h.doc_id for h in hybrid.search(question, depth)
                if h.doc_id != doc.id and h.doc_id not in exclude
                and not (doc.title and index.doc(h.doc_id).title == doc.title)]
        if len(hits) < size:
            continue
        chosen = rng.sample(hits, size)
        scores = teacher_scores(index, question, [index.position(d) for d in chosen])
        texts = [index.doc(d).full_text for d in chosen]
        groups.append(Group(question, texts[0], tuple(texts[1:]), f"{index.path.name}:distill", teacher=scores,
                            labelled=False))
    return groups


def add_teacher(groups: list[Group], indexes: Sequence[LoadedIndex], counts: Sequence[int], *,
                dev_docs: frozenset[str], size: int, depth: int, seed: int, keywords: float = 0.0) -> list[Group]:
    """`groups` with the teacher's scores where their passages are in one of `indexes`, plus `counts[i]` label-free
    groups of `size` passages from `indexes[i]` (`distill_groups`; never a passage of `dev_docs`), all shuffled
    with `random.Random(seed + 1)`, which also draws the label-free groups. ValueError if the lengths differ."""
    if len(counts) != len(indexes):
        raise ValueError(f"one count per index: {len(counts)} counts for {len(indexes)} indexes")
    rng = random.Random(seed + 1)
    for index, count in zip(indexes, counts, strict=True):
        groups = with_teacher(groups, index)
        if count:
            groups += distill_groups(index, count, size=size, depth=depth, rng=rng, exclude=dev_docs,
                                     keywords=keywords)
    rng.shuffle(groups)
    return groups


def distill_loss(logits, teacher, temperature: float = TEMPERATURE):
    """KL(teacher || student) per group, averaged: `logits` and `teacher` are (groups, passages) tensors; the teacher's
    cosines become a distribution by softmax(cosine / temperature), the student's logits by softmax."""
    import torch.nn.functional as F

    target = F.softmax(teacher / temperature, dim=-1)
    return F.kl_div(F.log_softmax(logits, dim=-1), target, reduction="batchmean")
