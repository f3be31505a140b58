"""What the answer gate reads of a question's reranked list: features of its top passage, known at serving time
without another model call.

For the top passage P of the reranked list (`ANSWER_FEATURES` order):

- ``top_logit``: P's cross-encoder logit;
- ``logit_margin``: P's logit minus the highest logit of the other scored passages (contentless ones left out);
  with early stopping only scored passages have logits, and when no other was scored the margin is
  `NO_RIVAL_MARGIN` (0.0, a tie: no evidence that P stands out);
- ``recall_score``: P's recall score (under hybrid recall, its RRF score); ``recall_top1``: 1.0 if P is recall's
  first candidate;
- ``cosine``, ``cosine_gap``, ``bm25_rel``: P's row of `engine.fusion`'s candidate features;
- ``query_overlap``: the share of the question's distinct content words found in P's text.

`answer_features` is the arithmetic; `question_features` reads the signals from an index, the same way for
`earlyrank fit-abstention`, the benchmark and `Pipeline.ask`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from earlyrank.engine.fusion import STATIC_FEATURES, CandidateSignals
from earlyrank.engine.rerank import NO_CONTENT_LOGIT
from earlyrank.indexes.tokenize import Tokenizer
from earlyrank.indexes.types import Hit

if TYPE_CHECKING:
    from earlyrank.indexes.store import LoadedIndex

ANSWER_FEATURES = ("top_logit", "logit_margin", "recall_score", "recall_top1", "cosine", "cosine_gap",
                   "bm25_rel", "query_overlap")
NO_RIVAL_MARGIN = 0.0
_SIGNALS = ("cosine", "cosine_gap", "bm25_rel")
_WORDS = Tokenizer()  # the BM25 tokenizer's defaults: stop words dropped, stemmed


def query_overlap(query: str, passage: str) -> float:
    """The share of `query`'s distinct content words that occur in `passage`, in [0, 1]; 0.0 if it has none.

    >>> query_overlap("What is the capital of France?", "Paris is the capital.")  # what, capit, franc: 1 of 3
    0.3333333333333333
    """
    words = set(_WORDS(query))
    return len(words & set(_WORDS(passage))) / len(words) if words else 0.0


def answer_features(ranked: Sequence[Hit], signals: CandidateSignals, overlap: float) -> np.ndarray | None:
    """The features of `ranked`'s top passage, shape (len(ANSWER_FEATURES),); None if it was not scored.

    `ranked` is the reranked list, every candidate, best first (each hit's stage scores hold ``recall`` and
    ``recall_rank``, and ``logit`` if scored); `signals` are the candidates' signals in recall order (its
    `recall_rank` locates the top passage); `overlap` is `query_overlap` of the question and the top passage.
    """
    top = ranked[0] if ranked else None
    if top is None or top.logit is None:
        return None
    logit = top.logit
    rivals = [h.logit for h in ranked[1:] if h.logit is not None and h.logit > NO_CONTENT_LOGIT]
    margin = logit - max(rivals) if rivals else NO_RIVAL_MARGIN
    rank = top.stage_scores["recall_rank"]
    row = np.nonzero(np.asarray(signals.recall_rank) == rank)[0]
    if row.size != 1:
        raise ValueError(f"recall rank {rank} of the top passage is not one candidate's in the signals")
    static = signals.features()[row[0]]
    picked = [static[STATIC_FEATURES.index(name)] for name in _SIGNALS]
    return np.asarray([logit, margin, top.stage_scores["recall"], float(rank == 1), *picked, overlap],
                      dtype=np.float64)


def question_features(index: LoadedIndex, query: str, ranked: Sequence[Hit]) -> np.ndarray | None:
    """`answer_features` of `ranked` (every candidate of `query`, reranked), its signals read from `index`
    (both its BM25 and its dense part, `indexes.signals`); None if the top passage was not scored."""
    from earlyrank.indexes.signals import candidate_scores

    if not ranked or ranked[0].logit is None:
        return None
    in_recall_order = sorted(ranked, key=lambda h: h.stage_scores["recall_rank"])
    cosine, bm25 = candidate_scores(index, query, [h.doc_id for h in in_recall_order])
    ranks = np.asarray([h.stage_scores["recall_rank"] for h in in_recall_order], dtype=np.float64)
    overlap = query_overlap(query, index.doc(ranked[0].doc_id).full_text)
    return answer_features(ranked, CandidateSignals(cosine, bm25, ranks), overlap)
