"""BM25 recall: bm25s holds, stores, memory-maps and sums the weights; rank-bm25's BM25Okapi is the slow reference.

Every (term, document) weight ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` is precomputed into
bm25s' sparse matrix, so a query is bm25s' sum of a few of its rows. Two IDF variants:

- ``lucene`` (default): ``log(1 + (N - df + 0.5) / (df + 0.5))``, never negative; Lucene/Pyserini's BM25, and
  bm25s' method "atire" with idf_method "lucene" (its method "lucene" drops the (k1 + 1) numerator, as Lucene 8
  did: the same ranking, every score divided by k1 + 1; the learned fusion and earlier indexes know these).
- ``okapi``: rank-bm25's ``BM25Okapi``: ``log((N - df + 0.5) / (df + 0.5))``, a negative IDF (a term in more
  than half the documents) replaced by ``epsilon * mean IDF``; with the same tokens, k1, b and epsilon it scores
  as rank-bm25 does. bm25s cannot give it: its "robertson" IDF floors a negative IDF at 0 (epsilon 0).

The weights are computed here, in a few array operations, straight into bm25s' layout. bm25s' own indexer gives
the same numbers (tested) but loops over the documents in Python: 8.4 s where this takes 1.0 s at 100,000
passages (a whole build 20.8 s against 12.5 s, results/bm25_backend/), and an update (`indexes.update`)
computes every weight again (each depends on N, avgdl and df) from the term frequencies the index keeps. The
tokens are our tokenizer's (`indexes.tokenize`), numbered in order of first occurrence, so a build is the same
byte for byte. bm25s' files load memory-mapped: a large index is paged in from its files, shared by every
worker process, instead of read into each. An index written before bm25s (format 2: ``bm25_weights.npz``, the
same arrays) loads as it is. The top k are ours (`indexes.base.top_k`): ties go to the lower position and a
filter's positions are searched directly, where bm25s' retrieve leaves ties to argpartition, refuses a k above
the corpus size and filters by multiplying every score by a mask.
"""

from __future__ import annotations

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


def idf(df: np.ndarray, n_docs: int, params: BM25Params) -> np.ndarray:
    """IDF per term from document frequencies, in the chosen variant (see the module docstring)."""
    if params.idf == "lucene":
        return np.log1p((n_docs - df + 0.5) / (df + 0.5))
    okapi = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    floor = params.epsilon * okapi.mean() if okapi.size else 0.0
    return np.where(okapi < 0, floor, okapi)


def bm25_weights(term_frequencies, params: BM25Params) -> dict:
    """Every (term, document) weight, as bm25s' index holds them: its CSC arrays over (docs, terms) "data",
    "indices", "indptr" and "num_docs", which are the arrays of the CSR matrix (terms, docs) `term_frequencies`
    with float32 weights for counts. A document's length is its number of tokens, the sum of its column."""
    tf = term_frequencies.tocsr()
    n_docs = tf.shape[1]
    counts = tf.data.astype(np.float64)
    lengths = np.bincount(tf.indices, weights=counts, minlength=n_docs)
    avgdl = lengths.mean() if n_docs else 0.0
    norm = params.k1 * (1 - params.b + params.b * lengths / max(avgdl, 1e-9))
    weights = np.repeat(idf(np.diff(tf.indptr).astype(np.float64), n_docs, params), np.diff(tf.indptr))
    weights *= counts
    weights *= params.k1 + 1
    counts += norm[tf.indices]
    weights /= counts  # in place, over arrays as long as the index: a million passages hold tens of millions
    return {"data": weights.astype(np.float32), "indices": tf.indices.astype(np.int32),
            "indptr": tf.indptr.astype(np.int64), "num_docs": n_docs}


def bm25s_model(params: BM25Params, scores: dict, vocab: dict[str, int]):
    """A bm25s `BM25` holding the weights `scores` (bm25s' CSC arrays: data, indices, indptr, num_docs) for the
    terms `vocab`, as its `index` and `load` leave it."""
    import bm25s

    idf_method = "lucene" if params.idf == "lucene" else "robertson"  # okapi: bm25s' nearest (see the docstring)
    # Queries sum in float32 (bm25s' dtype): a float64 sum of the float32 weights, as before bm25s, would match the
    # old scores to the last bit but makes numpy's add.at take its slow path (2.3x the query time at 100k passages)
    model = bm25s.BM25(k1=params.k1, b=params.b, method="atire", idf_method=idf_method)
    model.scores, model.vocab_dict, model.nonoccurrence_array = scores, vocab, None
    model.unique_token_ids_set = set(vocab.values())
    return model


def bm25_hits(doc_ids: Sequence[str], scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
    """The k best documents with a positive score, best first; with `allowed` (sorted positions), the k best of
    those."""
    best = top_k(scores, k, allowed)
    values = scores[best]
    keep = values > 0
    pairs = zip(best[keep].tolist(), values[keep].tolist(), strict=True)
    return [Hit(doc_ids[i], s, r, {"bm25": s}) for r, (i, s) in enumerate(pairs, 1)]


class BM25Index:
    """BM25 over a bm25s index (`model`, a `bm25s.BM25`) of our tokens."""

    name = "bm25"

    def __init__(self, doc_ids: Sequence[str], model, params: BM25Params, term_frequencies=None):
        self.doc_ids = list(doc_ids)
        self.model = model
        self.params = params
        self.term_frequencies = term_frequencies  # int32 CSR (terms, docs) when built here; not kept by `load`
        self._tokenizer = params.tokenizer()

    @property
    def vocab(self) -> dict[str, int]:
        """Term -> term id (the row of the weights and of the term frequencies)."""
        return self.model.vocab_dict

    @classmethod
    def build(cls, doc_ids: Sequence[str], texts: Sequence[str], params: BM25Params | None = None,
              progress: bool = False) -> BM25Index:
        """Tokenize `texts` and compute every weight into a bm25s index; `doc_ids[i]` names `texts[i]`."""
        params = params or BM25Params()
        vocab: dict[str, int] = {}
        tf = count_terms(texts, params.tokenizer(), vocab, progress)
        return cls.from_term_frequencies(doc_ids, vocab, tf, params)

    @classmethod
    def from_term_frequencies(cls, doc_ids: Sequence[str], vocab: dict[str, int], term_frequencies,
                              params: BM25Params) -> BM25Index:
        """The index of documents given by their term frequencies (a CSR matrix, shape (len(vocab), len(doc_ids)),
        as `count_terms` makes)."""
        return cls(doc_ids, bm25s_model(params, bm25_weights(term_frequencies, params), vocab), params,
                   term_frequencies)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document (0 where no query term occurs); repeated query terms count twice."""
        terms = [self.vocab[t] for t in self._tokenizer(query) if t in self.vocab]
        if not terms:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        return self.model.get_scores_from_ids(terms)

    def tokenize(self, text: str) -> list[str]:
        """`text`'s terms as this index reads them (lowercased, stemmed and without stop words by default)."""
        return self._tokenizer(text)

    def term_idf(self, text: str) -> dict[str, float]:
        """The IDF (this index's variant) of each distinct term of `text` the index holds: term -> IDF. A term no
        passage holds is left out."""
        indptr = self.model.scores["indptr"]  # bm25s' CSC arrays over (docs, terms): a term's passages
        ids = {t: self.vocab[t] for t in self.tokenize(text) if t in self.vocab}
        if not ids:
            return {}
        n_docs = int(self.model.scores["num_docs"])
        if self.params.idf == "okapi":  # its floor is a share of the mean over every term
            values = idf(np.diff(indptr).astype(np.float64), n_docs, self.params)[list(ids.values())]
        else:
            df = np.asarray([indptr[i + 1] - indptr[i] for i in ids.values()], dtype=np.float64)
            values = idf(df, n_docs, self.params)
        return dict(zip(ids, values.tolist(), strict=True))

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` best documents with a positive score, best first, among the positions `allowed` if given;
        ValueError if `k` is not a positive integer."""
        check_k(k)
        return bm25_hits(self.doc_ids, self.scores(query), k, allowed)

    # --- persistence: plain files, checksummed by the index manifest ---
    FILES = {"data_name": "bm25s_data.csc.index.npy", "indices_name": "bm25s_indices.csc.index.npy",
             "indptr_name": "bm25s_indptr.csc.index.npy", "vocab_name": "bm25s_vocab.index.json",
             "params_name": "bm25s_params.index.json"}
    TF_FILE = "bm25_tf.npz"  # the term frequencies, for updates; an index built before them has none
    FORMAT_2_FILES = ("bm25_weights.npz", "bm25_vocab.json")  # before bm25s: the weights, the terms in id order

    def save(self, directory: Path) -> list[Path]:
        """Write bm25s' files and, if this index has them, the term frequencies into `directory`; returns the paths,
        for the manifest."""
        from scipy import sparse

        self.model.save(directory, show_progress=False, **self.FILES)
        paths = [directory / name for name in self.FILES.values()]
        if self.term_frequencies is None:
            return paths
        sparse.save_npz(directory / self.TF_FILE, self.term_frequencies, compressed=False)
        return [*paths, directory / self.TF_FILE]

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
        """The index `save` wrote in `directory` (memory-mapped), or one written before bm25s, for `doc_ids` in
        corpus order; ValueError if its shape does not match the vocabulary and the corpus."""
        import bm25s

        if (directory / cls.FORMAT_2_FILES[0]).is_file():
            model = cls._load_format_2(directory, params)
        else:
            model = bm25s.BM25.load(directory, mmap=True, show_progress=False, **cls.FILES)
        shape = (len(model.scores["indptr"]) - 1, model.scores["num_docs"])
        if shape != (len(model.vocab_dict), len(doc_ids)):
            raise ValueError(f"{directory}: BM25 weights of shape {shape} do not match the vocabulary "
                             f"({len(model.vocab_dict)} terms) and corpus ({len(doc_ids)} passages)")
        return cls(doc_ids, model, params)

    @classmethod
    def _load_format_2(cls, directory: Path, params: BM25Params):
        """The bm25s model over the weights an index of format 2 stored: a CSR matrix (terms, docs), the same
        arrays as bm25s' CSC matrix (docs, terms), and the terms in id order."""
        import json

        from scipy import sparse

        weights_path, vocab_path = (directory / f for f in cls.FORMAT_2_FILES)
        weights = sparse.load_npz(weights_path).tocsr()
        terms = json.loads(vocab_path.read_text())
        scores = {"data": weights.data, "indices": weights.indices, "indptr": weights.indptr,
                  "num_docs": weights.shape[1]}
        return bm25s_model(params, scores, {t: i for i, t in enumerate(terms)})


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
