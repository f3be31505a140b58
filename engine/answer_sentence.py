"""The sentence of an answer passage most likely to hold the answer, with its character offsets.

The passage is cut into sentences by `indexes.sentences` (after '.', '!' or '?' followed by a space and a
capital letter or digit: good enough for prose). The chosen sentence is the one whose terms shared with the
question weigh most, each term weighing its IDF in the corpus searched (the weighted word count of Yang et al.,
"WikiQA", EMNLP 2015): no model call. It was chosen on 600 XQuAD train questions over the cross-encoder on each
sentence, the reciprocal-rank fusion of that with the shared-word count (shipped before), occlusion and others
(docs/experiments/answer-sentence.md, second round); measured by `benchmarks/answer_sentence_choice.py` and,
through the pipeline, `benchmarks/answer_sentence.py`. The cross-encoder then scores the chosen sentence alone
(one pair) for its confidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from earlyrank.engine.scoring import PairScorer
from earlyrank.indexes.sentences import sentence_spans

WORD = re.compile(r"\w+")
RRF_K = 60
MAX_SENTENCES = 64  # a longer passage is read in its first 64 sentences


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence of the passage: its text, its character offsets in the passage (``passage[start:end]``) and
    the cross-encoder's calibrated confidence for the question and this sentence alone, in [0, 1]."""

    text: str
    start: int
    end: int
    confidence: float


# shared_words and fused_ranks no longer choose the sentence: they are the baselines benchmarks/answer_sentence*.py
# measure the choice against.


def shared_words(query: str, sentence: str) -> int:
    """How many distinct lowercase words (``\\w+``) `sentence` shares with `query`."""
    return len(set(WORD.findall(query.lower())) & set(WORD.findall(sentence.lower())))


def fused_ranks(*orders: Sequence[float], k: int = RRF_K) -> list[float]:
    """Reciprocal-rank fusion of several scorings of the same items (higher is better in each; ties keep item
    order): ``sum over scorings of 1 / (k + rank)``, one value per item."""
    fused = [0.0] * len(orders[0])
    for values in orders:
        for rank, i in enumerate(sorted(range(len(values)), key=lambda i: (-values[i], i)), 1):
            fused[i] += 1 / (k + rank)
    return fused


def weighted_overlap(query_weights: Mapping[str, float], sentence_terms: Iterable[str]) -> float:
    """Sum of `query_weights` (term -> weight, e.g. its IDF) over the distinct terms of the sentence; a negative
    weight (BM25 okapi's floor can be) counts as 0, so sharing a term never makes a sentence less likely. The sum is
    exactly rounded (`math.fsum`), so it does not depend on the order of the set, which changes with Python's hash
    seed: two sentences tied in weight stay tied, and the same sentence is chosen in every process."""
    return math.fsum(max(query_weights.get(t, 0.0), 0.0) for t in set(sentence_terms))


def best_sentence(query_weights: Mapping[str, float], tokenize: Callable[[str], Sequence[str]], passage: str,
                  scorer: PairScorer | None = None, query: str = "", limit: int = MAX_SENTENCES
                  ) -> AnswerSentence | None:
    """The sentence of `passage`, among its first `limit`, whose distinct terms (`tokenize`, the BM25 index's
    tokenizer) shared with the question weigh most in `query_weights` (the question's terms and their IDF); the
    first of equals. None if the passage has no text. With a `scorer`, its calibrated confidence for (`query`,
    that sentence) is the returned confidence (one pair); without one, the confidence is 0.0. When no sentence
    shares a term of positive weight, the scorer (if any) chooses instead: one pair a sentence."""
    spans = sentence_spans(passage)[:max(0, min(limit, MAX_SENTENCES))]
    if not spans:
        return None
    texts = [passage[a:b] for a, b in spans]
    weights = [weighted_overlap(query_weights, tokenize(t)) for t in texts]
    if max(weights) <= 0 and scorer is not None and len(texts) > 1:
        # No sentence shares a weighed term (a question of stop words, or words the index lacks): the
        # cross-encoder reads every sentence and the most confident one is chosen.
        confidences = [float(c) for c in scorer.score(query, texts).confidences]
        best = max(range(len(texts)), key=lambda i: (confidences[i], -i))
        confidence = confidences[best]
    else:
        best = max(range(len(texts)), key=lambda i: (weights[i], -i))
        confidence = float(scorer.score(query, [texts[best]]).confidences[0]) if scorer is not None else 0.0
    a, b = spans[best]
    return AnswerSentence(texts[best], a, b, confidence)
