"""Long documents sent to the rerank endpoints, read in overlapping chunks; a document scores as its best chunk.

A document longer than `CHUNK_WORDS` words is cut as the index cuts long documents into passages
(`indexes.passages`), measured in words: chunks of whole sentences of at most `CHUNK_WORDS` words, each
repeating the last `CHUNK_OVERLAP` sentence of the one before, a longer sentence cut between words; at most
`max_chunks` of them are read (Cohere's `max_chunks_per_doc`, default 10). 120 words fit the cross-encoder's
first window of 192 word pieces, so a fact late in a long document is read as surely as one at its start
(MaxP, Dai & Callan, SIGIR 2019).
"""

from __future__ import annotations

from collections import Counter

from earlyrank.engine.rerank import NO_CONTENT_LOGIT, RerankResult
from earlyrank.indexes.passages import Words, passage_spans
from earlyrank.indexes.types import CONFIDENCE, LOGIT, Hit

CHUNK_WORDS = 120
CHUNK_OVERLAP = 1  # sentences
DEFAULT_MAX_CHUNKS = 10  # Cohere's default max_chunks_per_doc


def chunk_spans(text: str) -> list[tuple[int, int]]:
    """Every chunk of `text` as (start, end) offsets: one span if it has at most `CHUNK_WORDS` words."""
    return passage_spans(text, CHUNK_WORDS, CHUNK_OVERLAP, Words())


def document_chunks(text: str, max_chunks: int = DEFAULT_MAX_CHUNKS) -> list[str]:
    """`text` itself if it has at most `CHUNK_WORDS` words, else its first `max_chunks` overlapping chunks."""
    return [text[a:b] for a, b in chunk_spans(text)[:max_chunks]]


def chunked(texts: list[str], max_chunks: int) -> tuple[list[str], list[int], list[str]]:
    """Every document's first `max_chunks` chunks in one list, with the document each chunk belongs to, and a
    warning for each document with more chunks than were read (the rest of it was not read at all)."""
    chunks, owners, warnings = [], [], []
    for i, text in enumerate(texts):
        spans = chunk_spans(text)
        for a, b in spans[:max_chunks]:
            chunks.append(text[a:b])
            owners.append(i)
        if len(spans) > max_chunks:
            warnings.append(f"document {i}: read its first {max_chunks} of {len(spans)} chunks of about "
                            f"{CHUNK_WORDS} words; the rest was not scored (raise max_chunks_per_doc, or "
                            f"max_tokens_per_doc on /v2/rerank, to read it)")
    return chunks, owners, warnings


def best_chunks(result: RerankResult, owners: list[int], documents: int) -> RerankResult:
    """Fold a rerank of chunks (hit doc ids are chunk positions) into one hit per document: its best chunk's
    confidence and logit, with the chunk's number in the document under the stage ``chunk`` (only for a document
    read in several chunks). Documents come
    by confidence, ties in request order; a document with no content comes last."""
    first_chunk: dict[int, int] = {}
    for position, owner in enumerate(owners):
        first_chunk.setdefault(owner, position)
    chunks_of = Counter(owners)
    best: dict[int, Hit] = {}
    for hit in result.hits:
        position = int(hit.doc_id)
        doc = owners[position]
        if hit.confidence is None:
            continue
        if doc not in best or hit.confidence > (best[doc].confidence or 0.0):
            stages = {LOGIT: hit.logit or 0.0, CONFIDENCE: hit.confidence}
            if chunks_of[doc] > 1:  # a document read whole has no chunk number
                stages["chunk"] = float(position - first_chunk[doc])
            best[doc] = Hit(str(doc), hit.confidence, 0, stages)

    def order(doc: int) -> tuple[bool, float, int]:
        hit = best[doc]
        return (hit.logit is not None and hit.logit <= NO_CONTENT_LOGIT, -(hit.confidence or 0.0), doc)

    ranked = sorted(best, key=order)
    hits = [Hit(best[d].doc_id, best[d].score, r, best[d].stage_scores) for r, d in enumerate(ranked, 1)]
    return RerankResult(hits, result.scored, documents, result.stopped_early, result.reason, result.seconds)
