"""Training groups for the cross-encoder: one positive and n negatives per group.

Positives are judged pairs from a train split. Hard negatives are the project's own hybrid recall
(BM25 + dense) with every judged positive removed; a few random corpus passages are added so the model also
sees easy cases. Self-supervised groups need no labels: a passage's title is the question and its text
(without the title) the positive, and the negatives are other passages' texts that BM25 finds for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.datasets import Dataset, Qrels
from engine.types import Query
from indexes.store import LoadedIndex


@dataclass(frozen=True)
class Group:
    query: str
    positive: str
    negatives: tuple[str, ...]
    source: str


def split_dev(queries: list[Query], qrels: Qrels, dev_size: int, seed: int) -> tuple[list[Query], list[Query]]:
    """Carve a dev set of `dev_size` judged queries out of the train split; (train, dev)."""
    judged = [q for q in queries if q.id in qrels]
    rng = random.Random(seed)
    shuffled = judged[:]
    rng.shuffle(shuffled)
    dev_ids = {q.id for q in shuffled[:dev_size]}
    return [q for q in judged if q.id not in dev_ids], [q for q in judged if q.id in dev_ids]


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


def self_supervised_groups(index: LoadedIndex, count: int, *, negatives: int, depth: int,
                           rng: random.Random, exclude: frozenset[str] = frozenset()) -> list[Group]:
    """Title-as-question groups from an unlabelled corpus (documents with a title and some text)."""
    if index.bm25 is None:
        raise ValueError("self-supervised groups need the BM25 part of the index")
    docs = [d for d in index.docs if d.title and len(d.text) > 100 and d.id not in exclude]
    by_id = {d.id: d for d in index.docs}
    groups = []
    for doc in rng.sample(docs, min(count, len(docs))):
        hits = [h.doc_id for h in index.bm25.search(doc.title, depth) if h.doc_id != doc.id]
        others = [by_id[d].text for d in hits if by_id[d].title != doc.title]
        if len(others) < negatives:
            continue
        groups.append(Group(doc.title, doc.text, tuple(rng.sample(others, negatives)), f"{index.path.name}:self"))
    return groups


def build_training_set(datasets: list[tuple[Dataset, LoadedIndex]], *, dev_queries: int, dev_depth: int,
                       negatives: int, random_negatives: int, mining_depth: int, self_supervised: int,
                       seed: int, dev_eval_queries: int = 60):
    """Groups from every data set's train split (minus its dev part) and the dev candidates to select on.

    Query ids in the dev set are prefixed with the data set's name so that data sets never collide.
    """
    from engine.training import DevSet

    rng = random.Random(seed)
    groups: list[Group] = []
    dev = DevSet()
    for dataset, index in datasets:
        queries, qrels = dataset.split("train")
        train_queries, dev_part = split_dev(queries, qrels, dev_queries, seed)
        groups += labelled_groups(dataset, index, train_queries, qrels, negatives=negatives,
                                  random_negatives=random_negatives, depth=mining_depth, rng=rng)
        if self_supervised:
            groups += self_supervised_groups(index, self_supervised, negatives=negatives, depth=mining_depth,
                                             rng=rng)
        retriever = index.retriever("hybrid")
        for query in dev_part[:dev_eval_queries]:
            key = f"{dataset.name}/{query.id}"
            hits = retriever.search(query.text, dev_depth)
            dev.items.append((key, query.text, [(h.doc_id, index.doc(h.doc_id).full_text) for h in hits]))
            dev.qrels[key] = qrels[query.id]
    rng.shuffle(groups)
    return groups, dev
