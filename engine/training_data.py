"""Training groups for the cross-encoder: one positive and n negatives per group.

Positives are judged pairs from a train split. Hard negatives are the project's own hybrid recall
(BM25 + dense) with every judged positive removed; a few random corpus passages are added so the model also
sees easy cases. Self-supervised groups need no labels, so a user can adapt the reranker to their own corpus:
either a passage's title is the question and its text (without the title) the positive, or (inverse cloze) one
of its sentences is the question and the rest of the passage the positive; the negatives are other passages
that BM25 finds for the question.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from earlyrank.engine.datasets import Dataset, Qrels
from earlyrank.indexes.sentences import sentences
from earlyrank.indexes.store import LoadedIndex
from earlyrank.indexes.types import Document, Query


@dataclass
class DevCandidates:
    """Dev queries with hybrid candidates, for model selection: (query, [(doc_id, text)], qrels)."""

    items: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def documents(self) -> frozenset[str]:
        """Every passage judged for a dev query: what training must never draw a question from."""
        return frozenset(d for judged in self.qrels.values() for d in judged)


@dataclass(frozen=True)
class Group:
    """One training example: a question, its positive passage and its negatives, with the `source` it came from (the
    data set's name, or ``<index>:self`` / ``<index>:sentence`` / ``<index>:distill`` for label-free groups).

    `teacher` holds a teacher's score for each passage, positive first (shape 1 + negatives), when distilling.
    A group with `labelled` False has no known positive: only the teacher's scores train on it.
    """

    query: str
    positive: str
    negatives: tuple[str, ...]
    source: str
    teacher: tuple[float, ...] | None = None
    labelled: bool = True


DEV_SPLITS = ("query", "title")
SELF_SUPERVISED_KINDS = ("title", "sentence")


def split_dev(queries: list[Query], qrels: Qrels, dev_size: int, seed: int,
              titles: Mapping[str, str] | None = None) -> tuple[list[Query], list[Query]]:
    """Carve a dev set of `dev_size` judged queries out of the train split; (train, dev).

    With `titles` (passage id -> title), the split is by title instead of by query: queries whose judged
    passages share a title (XQuAD: the same article) all fall on one side, whole titles are drawn until dev
    holds at least `dev_size` queries, and no dev passage's article was seen in training, as on the test split.
    """
    judged = [q for q in queries if q.id in qrels]
    rng = random.Random(seed)
    if titles is None:
        shuffled = judged[:]
        rng.shuffle(shuffled)
        dev_ids = {q.id for q in shuffled[:dev_size]}
    else:
        dev_ids = _whole_titles(judged, qrels, titles, dev_size, rng)
    return [q for q in judged if q.id not in dev_ids], [q for q in judged if q.id in dev_ids]


def _whole_titles(judged: list[Query], qrels: Qrels, titles: Mapping[str, str], dev_size: int,
                  rng: random.Random) -> set[str]:
    """Ids of queries drawn a connected title group at a time (queries linked by any shared judged title)."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for query in judged:
        keys = [f"title:{titles.get(d) or d}" for d in sorted(qrels[query.id])] or [f"query:{query.id}"]
        for key in (f"query:{query.id}", *keys):
            parent[root(key)] = root(keys[0])
    groups: dict[str, list[str]] = {}
    for query in judged:
        groups.setdefault(root(f"query:{query.id}"), []).append(query.id)
    order = sorted(groups)
    rng.shuffle(order)
    dev_ids: set[str] = set()
    for key in order:
        if len(dev_ids) >= dev_size:
            break
        dev_ids.update(groups[key])
    return dev_ids


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    """A ValueError naming `what`, the allowed values and the given one, unless `value` is allowed."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")


def check_dev_split(dev_split: str) -> None:
    """ValueError unless `dev_split` is one of `DEV_SPLITS` ("query", "title")."""
    check_choice("dev_split", dev_split, DEV_SPLITS)


def dev_titles(dataset: Dataset, dev_split: str) -> dict[str, str] | None:
    """The `titles` argument of `split_dev` for a `dev_split` of "query" (None) or "title"."""
    check_dev_split(dev_split)
    return {d.id: d.title for d in dataset.corpus} if dev_split == "title" else None


def labelled_groups(dataset: Dataset, index: LoadedIndex, queries: list[Query], qrels: Qrels, *,
                    negatives: int, random_negatives: int, depth: int, rng: random.Random) -> list[Group]:
    """One group per (query, positive) with hard negatives from hybrid recall and some random ones."""
    retriever = index.retriever("hybrid")
    texts = {d.id: d.full_text for d in index.docs}
    all_ids = [d.id for d in index.docs]
    groups = []
    for query in queries:
        positives = [d for d, rel in qrels.get(query.id, {}).items() if rel > 0]
        if not positives:
            continue
        judged = set(qrels[query.id])
        hard = [h.doc_id for h in retriever.search(query.text, depth) if h.doc_id not in judged]
        for positive in positives:
            chosen = rng.sample(hard, min(negatives - random_negatives, len(hard)))
            while len(chosen) < negatives:
                candidate = rng.choice(all_ids)
                if candidate not in judged and candidate not in chosen:
                    chosen.append(candidate)
            groups.append(Group(query.text, texts[positive], tuple(texts[d] for d in chosen), dataset.name))
    return groups


def check_self_supervised_kind(kind: str) -> None:
    """ValueError unless `kind` is one of `SELF_SUPERVISED_KINDS` ("title", "sentence")."""
    check_choice("self-supervised kind", kind, SELF_SUPERVISED_KINDS)


def self_supervised_groups(index: LoadedIndex, count: int, *, negatives: int, depth: int, rng: random.Random,
                           kind: str = "title", exclude: frozenset[str] = frozenset()) -> list[Group]:
    """Up to `count` groups from an unlabelled corpus, title-as-question or sentence-as-question; documents in
    `exclude` are never the question's own passage."""
    check_self_supervised_kind(kind)
    if kind == "sentence":
        return sentence_groups(index, count, negatives=negatives, depth=depth, rng=rng, exclude=exclude)
    bm25 = index.retriever("bm25")
    docs = [d for d in index.docs if d.title and len(d.text) > 100 and d.id not in exclude]
    groups = []
    for doc in rng.sample(docs, min(count, len(docs))):
        hits = [index.doc(h.doc_id) for h in bm25.search(doc.title, depth) if h.doc_id != doc.id]
        others = [d.text for d in hits if d.title != doc.title]
        if len(others) < negatives:
            continue
        groups.append(Group(doc.title, doc.text, tuple(rng.sample(others, negatives)), f"{index.path.name}:self"))
    return groups


def sentence_groups(index: LoadedIndex, count: int, *, negatives: int, depth: int, rng: random.Random,
                    exclude: frozenset[str] = frozenset(), min_words: int = 6, max_words: int = 40,
                    keep: float = 0.1) -> list[Group]:
    """Inverse-cloze groups (Lee et al., 2019): a sentence of a passage is the question and the passage without
    it the positive, so the model must match the question to its context, not to a copy of itself; with chance
    `keep` the sentence stays in, as a question's own words sometimes do. Negatives are the other passages BM25
    ranks highest for the sentence, same-title ones included: in a corpus of articles cut into paragraphs the
    sibling paragraphs are exactly the candidates a question must be told apart from.
    """
    bm25 = index.retriever("bm25")
    split = {d.id: sentences(d.text) for d in index.docs}
    choices = [(d, i) for d in index.docs if len(split[d.id]) > 1 and d.id not in exclude
               for i, s in enumerate(split[d.id]) if min_words <= len(s.split()) <= max_words]
    groups = []
    for doc, i in rng.sample(choices, min(count, len(choices))):
        parts = split[doc.id]
        rest = parts if rng.random() < keep else parts[:i] + parts[i + 1:]
        hits = [h.doc_id for h in bm25.search(parts[i], depth) if h.doc_id != doc.id]
        if len(hits) < negatives:
            continue
        positive = Document(doc.id, " ".join(rest), doc.title).full_text
        chosen = rng.sample(hits, negatives)
        groups.append(Group(parts[i], positive, tuple(index.doc(d).full_text for d in chosen),
                            f"{index.path.name}:sentence"))
    return groups


def build_training_set(datasets: list[tuple[Dataset, LoadedIndex]], *, dev_queries: int, dev_depth: int,
                       negatives: int, random_negatives: int, mining_depth: int, self_supervised: int,
                       seed: int, dev_eval_queries: int = 60, dev_split: str = "query",
                       self_supervised_kind: str = "title"):
    """Groups from every data set's train split (minus its dev part) and the dev candidates to select on.

    Query ids in the dev set are prefixed with the data set's name so that data sets never collide.
    """
    rng = random.Random(seed)
    groups: list[Group] = []
    dev = DevCandidates()
    for dataset, index in datasets:
        queries, qrels = dataset.split("train")
        train_queries, dev_part = split_dev(queries, qrels, dev_queries, seed, dev_titles(dataset, dev_split))
        groups += labelled_groups(dataset, index, train_queries, qrels, negatives=negatives,
                                  random_negatives=random_negatives, depth=mining_depth, rng=rng)
        if self_supervised:
            groups += self_supervised_groups(index, self_supervised, negatives=negatives, depth=mining_depth,
                                             rng=rng, kind=self_supervised_kind)
        retriever = index.retriever("hybrid")
        for query in dev_part[:dev_eval_queries]:
            key = f"{dataset.name}/{query.id}"
            hits = retriever.search(query.text, dev_depth)
            dev.items.append((key, query.text, [(h.doc_id, index.doc(h.doc_id).full_text) for h in hits]))
            dev.qrels[key] = qrels[query.id]
    rng.shuffle(groups)
    return groups, dev


def best_windows(groups: list[Group], scorer) -> list[Group]:
    """Each group with every passage too long for the pair cut to the one of the windows `scorer` (a
    `CrossEncoder`) reads at inference that shares the most content words with the question.

    Inference keeps a passage's best window (MaxP); training on the head of a passage whose relevant part lies
    in a later window would teach the model a positive without its evidence. The windows are the scorer's own
    (its pair cut, token cap and `window_starts`). Ties keep the earliest window, so with one window or short
    passages nothing changes.
    """
    from earlyrank.engine.cross_encoder import window_starts
    from earlyrank.indexes.tokenize import Tokenizer

    if scorer.windows == 1:
        return groups
    words = Tokenizer()

    def cut(query: str, passage: str) -> str:
        [(ids, start)] = scorer.pair_ids([query], [passage])
        length = len(scorer.token_ids([passage])[0])
        width = len(ids) - start - 1  # passage tokens the first window keeps
        if width <= 0 or width >= length:
            return passage  # fits whole, or the question is the longer side and is cut instead
        spans = scorer.tokenizer(passage, add_special_tokens=False, return_offsets_mapping=True,
                                 verbose=False)["offset_mapping"]  # no warning for passages past the model's 512
        query_words = set(words(query))
        best, best_overlap = passage, -1
        for first in window_starts(length, width, scorer.windows):
            text = passage[spans[first][0]:spans[first + width - 1][1]]
            overlap = len(query_words.intersection(words(text)))
            if overlap > best_overlap:  # the head wins ties, and stays the whole passage the pair cut reads
                best, best_overlap = (passage if first == 0 else text), overlap
        return best

    return [replace(g, positive=cut(g.query, g.positive), negatives=tuple(cut(g.query, n) for n in g.negatives))
            for g in groups]
