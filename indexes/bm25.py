"""Sparse BM25: the fast default backend, and rank-bm25's BM25Okapi as a selectable reference.

The fast backend precomputes every (term, document) BM25 weight into a sparse term-by-document matrix, so a
query is the sum of a few matrix rows. Two IDF variants:

- ``lucene`` (default): ``log(1 + (N - df + 0.5) / (df + 0.5))``, never negative; Lucene/Pyserini's BM25.
- ``okapi``: rank-bm25's ``BM25Okapi``: ``log((N - df + 0.5) / (df + 0.5))``, and a negative IDF (a term in
  more than half the documents) is replaced by ``epsilon * mean IDF`` exactly as rank-bm25 does; with the
  same tokens, k1, b and epsilon both backends give identical scores.

Both variants use the term-frequency part ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``. Every weight
depends on the corpus (N, avgdl, df), so the index also stores each document's term frequencies: adding or
deleting documents recomputes the weights from them without tokenizing the whole corpus again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earlyrank.indexes.base import check_k, top_k
from earlyrank.indexes.tokenize import Tokenizer
from earlyrank.indexes.types import Hit


@dataclass(frozen=True)
class BM25Params:
    """BM25 settings (Robertson & Zaragoza 2009): `k1` (term-frequency saturation, >= 0), `b` (length normalization, in
    [0, 1]), the IDF variant and the tokenizer's options. The defaults k1=0.9, b=0.4 are Pyserini's BM25 baseline's.
    ValueError naming the bad value."""

    k1: float = 0.9
    b: float = 0.4
    idf: str = "lucene"  # "lucene" or "okapi"
    epsilon: float = 0.25  # okapi only: the floor for negative IDF, as a fraction of the mean IDF
    stem: bool = True
    stopwords: bool = True

    def __post_init__(self) -> None:
        if self.idf not in ("lucene", "okapi"):
            raise ValueError(f"BM25 idf must be 'lucene' or 'okapi', got {self.idf!r}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")

    def tokenizer(self) -> Tokenizer:
        """The `Tokenizer` these settings ask for (stemming and stop words on or off)."""
        return Tokenizer(stem=self.stem, stopwords=self.stopwords)


def idf_weights(df: np.ndarray, n_docs: int, params: BM25Params) -> np.ndarray:
    """IDF per term from document frequencies, in the chosen variant (see the module docstring)."""
    if params.idf == "lucene":
        return np.log1p((n_docs - df + 0.5) / (df + 0.5))
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    floor = params.epsilon * idf.mean() if idf.size else 0.0
    return np.where(idf < 0, floor, idf)


def count_terms(texts: Sequence[str], tokenizer: Tokenizer, vocab: dict[str, int], progress: bool = False):
    """How often each term occurs in each text: an int32 CSR matrix, shape (len(vocab), len(texts)). A term not
    in `vocab` yet is added to it, in place, with the next id."""
    from scipy import sparse
    from tqdm import tqdm

    rows: list[int] = []
    cols: list[int] = []
    tfs: list[int] = []
    for doc, text in enumerate(tqdm(texts, desc="BM25 tokenize", unit="doc", disable=not progress)):
        counts: dict[int, int] = {}
        for token in tokenizer(text):
            term = vocab.setdefault(token, len(vocab))
            counts[term] = counts.get(term, 0) + 1
        rows.extend(counts)
        cols.extend([doc] * len(counts))
        tfs.extend(counts.values())
    return sparse.csr_matrix((np.asarray(tfs, dtype=np.int32), (rows, cols)), shape=(len(vocab), len(texts)))


def bm25_weights(term_frequencies, params: BM25Params):
    """Every (term, document) BM25 weight, a float32 CSR matrix shaped like `term_frequencies` (terms by
    documents); a document's length is its number of tokens, the sum of its column."""
    from scipy import sparse

    counts = term_frequencies.tocoo()
    row, col = counts.row.astype(np.int64), counts.col.astype(np.int64)
    tf = counts.data.astype(np.float64)
    n_terms, n_docs = term_frequencies.shape
    lengths = np.bincount(col, weights=tf, minlength=n_docs)
    df = np.bincount(row, minlength=n_terms).astype(np.float64)
    idf = idf_weights(df, n_docs, params)
    avgdl = lengths.mean() if n_docs else 0.0
    norm = params.k1 * (1 - params.b + params.b * lengths[col] / max(avgdl, 1e-9))
    data = idf[row] * tf * (params.k1 + 1) / (tf + norm)
    return sparse.csr_matrix((data.astype(np.float32), (row, col)), shape=(n_terms, n_docs))


def bm25_hits(doc_ids: Sequence[str], scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
    """The k best documents with a positive score, best first; with `allowed` (sorted positions), the k best of
    those."""
    best = top_k(scores, k, allowed)
    values = scores[best]
    keep = values > 0
    pairs = zip(best[keep].tolist(), values[keep].tolist(), strict=True)
    return [Hit(doc_ids[i], s, r, {"bm25": s}) for r, (i, s) in enumerate(pairs, 1)]


class BM25Index:
    """BM25 over a sparse term-by-document weight matrix (scipy CSR)."""

    name = "bm25"

    def __init__(self, doc_ids: Sequence[str], vocab: dict[str, int], weights, params: BM25Params,
                 term_frequencies=None):
        self.doc_ids = list(doc_ids)
        self.vocab = vocab
        self.weights = weights  # scipy.sparse.csr_matrix, shape (terms, docs)
        self.params = params
        self.term_frequencies = term_frequencies  # int32 CSR (terms, docs) when built here; not kept by `load`
        self._tokenizer = params.tokenizer()

    @classmethod
    def build(cls, doc_ids: Sequence[str], texts: Sequence[str], params: BM25Params | None = None,
              progress: bool = False) -> BM25Index:
        """Tokenize `texts` and precompute every (term, document) BM25 weight into a float32 CSR matrix, shape (terms,
        docs); `doc_ids[i]` names `texts[i]`."""
        params = params or BM25Params()
        vocab: dict[str, int] = {}
        tf = count_terms(texts, params.tokenizer(), vocab, progress)
        return cls(doc_ids, vocab, bm25_weights(tf, params), params, tf)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document (0 where no query term occurs); repeated query terms count twice."""
        counts = Counter(self.vocab[t] for t in self._tokenizer(query) if t in self.vocab)
        if not counts:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        # Gather the query terms' rows straight from the CSR arrays and add them up in one bincount: 3x faster
        # than a scatter-add per term, and many times faster than scipy's row slicing and product.
        w = self.weights
        rows = [slice(w.indptr[term], w.indptr[term + 1]) for term in counts]
        docs = np.concatenate([w.indices[row] for row in rows])
        weights = np.concatenate([w.data[row] * n for row, n in zip(rows, counts.values(), strict=True)])
        return np.bincount(docs, weights=weights, minlength=len(self.doc_ids)).astype(np.float32)

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` best documents with a positive score, best first, among the positions `allowed` if given;
        ValueError if `k` is not a positive integer."""
        check_k(k)
        return bm25_hits(self.doc_ids, self.scores(query), k, allowed)

    # --- persistence: plain files, checksummed by the index manifest ---
    FILES = ("bm25_weights.npz", "bm25_vocab.json")
    TF_FILE = "bm25_tf.npz"  # the term frequencies, for updates; an index built before them has none

    def save(self, directory: Path) -> list[Path]:
        """Write the weights (an uncompressed .npz), the vocabulary (a JSON list in term-id order) and, if this index
        has them, the term frequencies into `directory`; returns the paths, for the manifest."""
        import json

        from scipy import sparse

        weights_path, vocab_path = (directory / f for f in self.FILES)
        sparse.save_npz(weights_path, self.weights, compressed=False)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        vocab_path.write_text(json.dumps(terms, ensure_ascii=False))
        if self.term_frequencies is None:
            return [weights_path, vocab_path]
        sparse.save_npz(directory / self.TF_FILE, self.term_frequencies, compressed=False)
        return [weights_path, vocab_path, directory / self.TF_FILE]

    @classmethod
    def load_term_frequencies(cls, directory: Path, shape: tuple[int, int]):
        """The term frequencies `save` wrote in `directory` (an int32 CSR matrix), or None if it wrote none;
        ValueError if their shape is not `shape` (terms, docs)."""
        from scipy import sparse

        path = directory / cls.TF_FILE
        if not path.is_file():
            return None
        tf = sparse.load_npz(path).tocsr()
        if tf.shape != shape:
            raise ValueError(f"{path}: shape {tf.shape} does not match the vocabulary and corpus {shape}")
        return tf

    @classmethod
    def load(cls, directory: Path, doc_ids: Sequence[str], params: BM25Params) -> BM25Index:
        """The index `save` wrote in `directory`, for `doc_ids` in corpus order; ValueError if the matrix's shape does
        not match the vocabulary and the corpus."""
        import json

        from scipy import sparse

        weights_path, vocab_path = (directory / f for f in cls.FILES)
        weights = sparse.load_npz(weights_path).tocsr()
        terms = json.loads(vocab_path.read_text())
        if weights.shape != (len(terms), len(doc_ids)):
            raise ValueError(f"{weights_path}: shape {weights.shape} does not match the vocabulary and corpus")
        return cls(doc_ids, {t: i for i, t in enumerate(terms)}, weights, params)


class RankBM25Index:
    """rank-bm25's ``BM25Okapi`` behind the same interface: the slow reference backend.

    It always uses rank-bm25's own IDF (``okapi`` with its epsilon floor), whatever ``params.idf`` says.
    """

    name = "bm25"

    def __init__(self, doc_ids: Sequence[str], texts: Sequence[str], params: BM25Params | None = None):
        from rank_bm25 import BM25Okapi

        self.doc_ids = list(doc_ids)
        self.params = params or BM25Params(idf="okapi")
        self._tokenizer = self.params.tokenizer()
        corpus = [self._tokenizer(t) for t in texts]
        self._bm25 = BM25Okapi(corpus, k1=self.params.k1, b=self.params.b, epsilon=self.params.epsilon)

    def scores(self, query: str) -> np.ndarray:
        """rank-bm25's score of every document for `query`, shape (docs,), float64."""
        return np.asarray(self._bm25.get_scores(self._tokenizer(query)), dtype=np.float64)

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` best documents with a positive score, best first, among the positions `allowed` if given;
        ValueError if `k` is not a positive integer."""
        check_k(k)
        return bm25_hits(self.doc_ids, self.scores(query), k, allowed)
