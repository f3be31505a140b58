"""The pipeline: recall, then (optionally) early-stopping rerank. ``Pipeline.ask(query, k)``.

Recall and the reranker work on the index's passages (a long document is several, `indexes.passages`); the
results are one hit per document, its best passage, unless `all_passages` asks for every passage. Each hit
says which document its passage comes from and where (`Hit.passage`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from earlyrank.engine.abstention import AnswerGate
from earlyrank.engine.answer_features import question_features
from earlyrank.engine.answer_sentence import AnswerSentence, best_sentence
from earlyrank.engine.cross_encoder import MAX_POSITIONS
from earlyrank.engine.fused_rerank import rerank_fused
from earlyrank.engine.fusion import CandidateSignals, Fusion
from earlyrank.engine.language import reading_form, unreadable_warning
from earlyrank.engine.rerank import Policy, RerankResult, chunk_within_deadline, has_content, rerank
from earlyrank.engine.scoring import PairScorer
from earlyrank.engine.stopping import BoundStop, FullRerank, StopReason
from earlyrank.indexes.base import check_k, search_within
from earlyrank.indexes.bm25 import BM25Params
from earlyrank.indexes.filters import FilterSpec
from earlyrank.indexes.passage_table import by_document, with_passages
from earlyrank.indexes.types import Document, Hit, Passage, RecallMode

if TYPE_CHECKING:  # a run-time import would make `import indexes` (before `engine`) circular
    from earlyrank.indexes.store import LoadedIndex



@dataclass(frozen=True)
class Answer:
    """The best passage for a question, the ranked hits and what the answer cost. `answer` is the passage as
    it was read (a long document's passage, under the document's title); `answer_passage` says which document
    it comes from and where."""

    query: str
    answer: Document | None
    confidence: float | None
    hits: list[Hit]
    scored: int
    candidates: int
    stopped_early: bool
    reason: str
    seconds: float
    sentence: AnswerSentence | None = None  # the answer passage's sentence most likely to hold the answer
    answer_confidence: float | None = None  # P(the top passage answers the question); None without a gate
    abstained: bool = False  # no confident answer: below the gate's threshold, or a question it cannot read
    warning: str | None = None  # e.g. the question is not in a script the model reads
    answer_passage: Passage | None = None  # the answer's document, and the passage's offsets in its text
    answer_threshold: float | None = None  # the gate's threshold for this index, when it judged the answer
    note: str | None = None  # what may make the answer less reliable without withholding it (a question cut short)

    @property
    def best(self) -> Document | None:
        """The answer to give: `answer`, unless it was withheld (`abstained`), nothing was recalled, or the top
        passage has no letter or digit (reranking put every real passage above it). What /v1/answer returns as
        its answer and `earlyrank ask` prints; `answer_passage.doc_id` is its document's id."""
        if self.answer is None or self.abstained or not has_content(self.answer.full_text):
            return None
        return self.answer


def check_query(query: str) -> str:
    """The query as earlyrank reads it (`language.reading_form`: NFKC, stripped); ValueError if it is not a string,
    holds only whitespace, or has no letter or digit (an emoji alone: nothing to search for, as the CLI and the
    service refuse it)."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty; ask a question with at least one word")
    if not has_content(query):
        raise ValueError(f"the query {query.strip()!r} has no letter or digit; ask a question with words")
    return reading_form(query)


def _tokenizing(scorer):
    """The model under `scorer`'s wrappers (a `ContentGuard` holds it as ``scorer``, the service's micro-batcher as
    ``model``) if it says how it tokenizes (``token_ids`` and ``max_length``, as a `CrossEncoder` does), else None."""
    for _ in range(4):  # a guard around a batcher around the model, at most
        if scorer is None or (hasattr(scorer, "token_ids") and isinstance(getattr(scorer, "max_length", None), int)):
            return scorer
        scorer = getattr(scorer, "scorer", None) or getattr(scorer, "model", None)
    return None


def question_cut_note(scorer, query: str, passages: Sequence[str] = ()) -> str | None:
    """A note when the reranker read `query` cut short beside one of `passages` (the cut `CrossEncoder.pair_ids`
    makes, ``longest_first``; a passage with no letter or digit is never read), else None; with no `passages`, when
    it would be cut beside a long one (beside a passage at least as long, the question keeps half of the model's
    room). `scorer` is a `CrossEncoder`, bare or wrapped; None for a scorer that does not say how it tokenizes."""
    model = _tokenizing(scorer)
    if model is None:
        return None
    pieces = len(model.token_ids([query.strip()])[0])
    read = [p for p in passages if has_content(p)]  # a passage with no letter or digit never reaches the model
    if read:
        kept = min(start - 2 for _, start in model.pair_ids([query.strip()] * len(read), read))
    elif passages:
        return None
    else:
        kept = (model.max_length - 3) // 2  # [CLS] question [SEP] passage [SEP]
    if pieces <= kept:
        return None
    size = f"{pieces}" if pieces < MAX_POSITIONS else f"over {MAX_POSITIONS - 1}"
    return (f"the question is {size} word pieces long and the reranker read only its first {kept} (about "
            f"{kept * 3 // 4} words) beside a passage, so the rest of it was not weighed; ask it in fewer words")


class Pipeline:
    """Recall from `index` in `mode`, rerank `depth` candidates with `scorer` under `policy`.

    With a `fusion` (and its stopping rule `fusion_stop`), the final score is the learned fusion of the logit
    with recall's own signals (`earlyrank.engine.fusion`), reranked by `rerank_fused`; a `policy` passed to
    `rerank` (e.g. the API's `threshold`) selects the plain confidence loop instead.
    """

    def __init__(self, index: LoadedIndex, scorer: PairScorer | None = None, policy: Policy | None = None,
                 mode: str = "hybrid", depth: int = 100, blend: float = 0.0, fusion: Fusion | None = None,
                 fusion_stop: BoundStop | None = None, answer_gate: AnswerGate | None = None):
        RecallMode.parse(mode)
        self.index = index
        self.scorer = scorer
        self.policy = policy or FullRerank(depth)
        self.mode = mode
        self.depth = depth
        self.blend = blend
        self.fusion = fusion
        self.fusion_stop = fusion_stop or BoundStop(k=100, depth=depth)
        self.answer_gate = answer_gate

    def with_scorer(self, scorer: PairScorer) -> Pipeline:
        """The same pipeline (index, policy, mode, depth, blend, fusion) scoring with `scorer` instead."""
        return Pipeline(self.index, scorer, self.policy, self.mode, self.depth, self.blend, self.fusion,
                        self.fusion_stop, self.answer_gate)

    def search(self, query: str, k: int = 10, mode: str | None = None, filter: FilterSpec = None,
               all_passages: bool = False) -> list[Hit]:
        """Recall only: the `k` best documents, each by its best passage, or with `all_passages` the `k` best
        passages; with a metadata `filter` (``{"category": "billing"}``, see `indexes.filters`), of the documents
        that match. FilterError (a ValueError) for a filter that is not one."""
        query = check_query(query)
        check_k(k)
        allowed = self._allowed(filter)
        if all_passages:
            return with_passages(self._recall(query, k, mode, allowed), self.index.passage)
        wanted = k
        while True:  # recall more passages until they come from k documents, or there are no more
            hits = self._recall(query, wanted, mode, allowed)
            best = by_document(hits, self.index.passage, k)
            if len(best) == k or len(hits) < wanted or wanted >= len(self.index.docs):
                return best
            wanted *= 4

    def _allowed(self, filter: FilterSpec) -> np.ndarray | None:
        """The positions recall may return under the metadata `filter` (None: all), computed once a query."""
        return None if filter is None else self.index.metadata.allowed(filter)

    def _recall(self, query: str, k: int, mode: str | None, allowed: np.ndarray | None) -> list[Hit]:
        # The filter applies inside recall, so that k matching documents come back whenever k exist.
        return search_within(self.index.retriever(mode or self.mode), query, k, allowed)

    def rerank(self, query: str, k: int = 10, mode: str | None = None, policy: Policy | None = None,
               depth: int | None = None, deadline: float | None = None, cancel: threading.Event | None = None,
               filter: FilterSpec = None, all_passages: bool = False) -> RerankResult:
        """Recall `depth` candidate passages (only of documents matching the metadata `filter`, if given) and
        rerank them; the result holds the top `k` documents, each by its best passage, or with `all_passages`
        the top `k` passages."""
        check_k(k)  # before the scoring, not after
        return self._top(self._rerank_all(query, mode, policy, depth, deadline, cancel, filter), k, all_passages)

    def _rerank_all(self, query: str, mode: str | None = None, policy: Policy | None = None,
                    depth: int | None = None, deadline: float | None = None, cancel: threading.Event | None = None,
                    filter: FilterSpec = None) -> RerankResult:
        """`rerank`'s work before the cut to the top k: every candidate, best first. ValueError for a `depth` that
        is not a positive integer."""
        if depth is not None:
            check_k(depth, "depth")
        if self.scorer is None:
            raise ValueError("this pipeline has no reranker; load one with a model directory")
        query = check_query(query)
        candidates = self._recall(query, depth or self.depth, mode, self._allowed(filter))
        passages = [self.index.doc(h.doc_id).full_text for h in candidates]
        if self.fusion is not None and policy is None:
            return self._rerank_fused(query, candidates, passages, depth or self.depth, deadline, cancel)
        return rerank(query, candidates, passages, self.scorer, policy or self.policy, self.blend, deadline, cancel)

    def _top(self, result: RerankResult, k: int, all_passages: bool = False) -> RerankResult:
        """`result` cut to its top `k` documents, each by its best passage, or with `all_passages` passages (`k`
        checked by the caller, before the scoring)."""
        hits = (with_passages(result.hits[:k], self.index.passage) if all_passages
                else by_document(result.hits, self.index.passage, k))
        return RerankResult(hits, result.scored, result.candidates, result.stopped_early, result.reason,
                            result.seconds)

    def _rerank_fused(self, query: str, candidates: list[Hit], passages: list[str], depth: int,
                      deadline: float | None, cancel: threading.Event | None = None) -> RerankResult:
        from earlyrank.indexes.signals import candidate_scores

        assert self.scorer is not None and self.fusion is not None  # checked by the caller
        cosine, bm25 = candidate_scores(self.index, query, [h.doc_id for h in candidates])
        signals = CandidateSignals(cosine, bm25, np.asarray([h.rank for h in candidates], dtype=np.float64))
        stop = dataclasses.replace(self.fusion_stop, depth=depth)
        return rerank_fused(query, candidates, passages, signals, self.scorer, self.fusion, stop, deadline, cancel)

    def ask(self, query: str, k: int = 10, sentence_too: bool = True, **options) -> Answer:
        """Answer a question: the top reranked passage, its confidence, the ranking and the cost; with
        `sentence_too`, also the passage's sentence most likely to hold the answer (`engine.answer_sentence`: chosen
        by the question's weighted terms, then one short pair scored for its confidence, counted in `seconds`, not
        in `scored`), with offsets in the answer passage's text.
        `options` go to `rerank` (`all_passages` among them)."""
        started = time.perf_counter()
        check_k(k)  # before the scoring, not after
        asked = check_query(query)  # as recall and the reranker read it
        all_passages = options.pop("all_passages", False)
        ranked = self._rerank_all(query, **options)
        result = self._top(ranked, k, all_passages)
        top = result.hits[0] if result.hits else None
        confidence = top.confidence if top else None
        passage = self.index.doc(top.doc_id) if top else None
        warning = unreadable_warning(query)
        answer_confidence, abstained, threshold = None, warning is not None, None
        if self.answer_gate is not None:
            answer_confidence = self._answer_confidence(query, ranked.hits, options.get("mode") or self.mode)
            if answer_confidence is not None:
                split = self.index.passages.split  # a split index has a threshold of its own, where fitted
                threshold = self.answer_gate.threshold_for(split)
                abstained = abstained or self.answer_gate.withholds(answer_confidence, split)
        sentence = None
        if (sentence_too and not abstained and passage is not None and self.scorer is not None and result.scored
                and result.reason not in (StopReason.DEADLINE, StopReason.CLIENT_GONE) and has_content(passage.text)):
            # Within a deadline, only if one more pair fits at the reranking's own rate in the time left.
            if chunk_within_deadline(1, options.get("deadline"), result.seconds, result.scored):
                sentence = self._answer_sentence(asked, passage.text)
        return Answer(query, passage, confidence, result.hits, result.scored, result.candidates,
                      result.stopped_early, result.reason, time.perf_counter() - started, sentence,
                      answer_confidence, abstained, warning, top.passage if top else None, threshold,
                      question_cut_note(self.scorer, asked, [self.index.doc(h.doc_id).full_text
                                                             for h in ranked.hits if h.logit is not None]))

    def _answer_sentence(self, query: str, passage: str) -> AnswerSentence | None:
        """`best_sentence` with the question's IDF in this index's BM25 part; without one, every question term weighs
        1 (the count of shared terms)."""
        bm25 = self.index.bm25
        if bm25 is not None:
            return best_sentence(bm25.term_idf(query), bm25.tokenize, passage, self.scorer, query)
        tokenize = BM25Params().tokenizer()
        return best_sentence(dict.fromkeys(tokenize(query), 1.0), tokenize, passage, self.scorer, query)

    def _answer_confidence(self, query: str, ranked: list[Hit], mode: str) -> float | None:
        """The gate's answer confidence for `ranked` (every candidate, reranked), or None where the gate cannot
        judge it: its top passage unscored, or recalled in a mode the gate does not read."""
        gate = self.answer_gate
        if gate is None or not ranked or ranked[0].logit is None or not gate.reads(mode):
            return None
        if gate.top_logit_only:
            return gate.answer_confidence(ranked[0].logit)
        features = question_features(self.index, check_query(query), ranked)
        return None if features is None else gate.answer_confidence(features)


def load_pipeline(index_dir, model_dir=None, mode: str = "hybrid", depth: int = 100,
                  backend: str | None = None) -> Pipeline:
    """A pipeline over a built index with the cross-encoder at `model_dir` (the bundled one by default) on
    `backend` (see `engine.cross_encoder`; default auto), using the stopping policy and blend that `earlyrank tune`
    stored with the model (full rerank if none)."""
    from pathlib import Path

    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.model_files import DEFAULT_MODEL
    from earlyrank.engine.operating_point import load_operating_point
    from earlyrank.indexes.store import load_index

    index = load_index(index_dir)
    scorer = CrossEncoder.load(model_dir, backend=backend)
    model = Path(model_dir) if model_dir else DEFAULT_MODEL
    policy, blend = load_operating_point(model, depth)
    fusion, fusion_stop = load_fusion(model, depth)
    if fusion is not None and (index.bm25 is None or index.dense is None):
        import logging

        logging.getLogger(__name__).warning(
            "%s: the model's learned fusion needs an index with both BM25 and dense parts; this one has not, so "
            "answers use the blended confidence instead (rebuild the index with both parts to use it)", index.path)
        fusion, fusion_stop = None, None
    gate = AnswerGate.load(model)
    if gate is not None and not gate.reads(mode):
        import logging

        logging.getLogger(__name__).warning(
            "the model's answer gate reads %s recall; under %s recall answers come without an answer confidence "
            "and are never withheld (ask with mode %s for one)", gate.recall_mode, mode, gate.recall_mode)
    return Pipeline(index, scorer, policy, mode, depth, blend, fusion, fusion_stop, gate)


def load_fusion(model_dir, depth: int = 100) -> tuple[Fusion | None, BoundStop | None]:
    """The fusion `earlyrank fit-fusion` stored with the model and its stopping rule, or (None, None)."""
    import json
    from pathlib import Path

    from earlyrank.engine.model_files import FUSION

    path = Path(model_dir) / FUSION
    if not path.is_file():
        return None, None
    fusion = Fusion.load(path)  # a ValueError naming the file if it is not a fusion
    try:
        stop = json.loads(path.read_text()).get("stopping") or {}
        return fusion, BoundStop(k=int(stop.get("k", 100)), margin=float(stop.get("margin", 0.0)),
                                 first_chunk=int(stop.get("first_chunk", 2)), depth=depth)
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: its stopping rule is not one fit-fusion writes ({e}); refit it") from None
