"""A fusion of the cross-encoder logit and the dense cosine fitted on a corpus alone, without labels (issue 23).

The rule and its settings are in docs/experiments/learned-fusion.md, "Third attempt". For each data set named, from
its corpus only (never its questions, qrels or run): 300 inverse-cloze pseudo-questions (Lee et al., ACL 2019), half
of them cut to a few content words; each with its passage less that sentence as the positive and the hybrid top 30
(less the source) as negatives; the shipped cross-encoder's logit and the bi-encoder's cosine of every pair; a
logistic regression on (logit, cosine) with `fusion_training.fit`. Writes, per set, a model directory (the shipped
model's files linked, plus the fitted fusion.json) for `earlyrank bench --suite --only SET --fusion DIR`, and for the
sets with a train split the rule's first check: dev nDCG@10 (hybrid top 100, as `earlyrank fit-fusion` scores it)
of the fusion's full rerank against the cross-encoder's confidence alone.

    python benchmarks/label_free_fusion.py --work DIR [--sets scifact xquad-en ...] [--datasets ../shared/datasets]
        [--questions 300] [--no-dev]

Resumable: each set's scored pseudo-questions are kept in DIR/SET/pseudo.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.fusion import CandidateSignals

QUESTIONS = 300
DEPTH = 30
KEYWORD_SHARE = 0.5
SEED = 13
KEEP = ("logit", "cosine")


def pseudo_questions(index, count: int, rng: random.Random) -> list[dict]:
    """Up to `count` inverse-cloze questions of `index`'s corpus: {query, positive, negatives (doc ids)}."""
    from earlyrank.engine.distillation import keyword_query
    from earlyrank.indexes.sentences import sentences
    from earlyrank.indexes.types import Document

    hybrid = index.retriever("hybrid")
    out: list[dict] = []
    for _ in range(count * 5):
        if len(out) >= count:
            break
        doc = rng.choice(index.docs)
        parts = sentences(doc.text)
        choices = [i for i, s in enumerate(parts) if 6 <= len(s.split()) <= 40]
        if len(parts) < 2 or not choices:
            continue
        i = rng.choice(choices)
        query = parts[i]
        if rng.random() < KEYWORD_SHARE:
            cut = keyword_query(query, rng)
            if cut is None:
                continue
            query = cut
        negatives = [h.doc_id for h in hybrid.search(query, DEPTH)
                     if h.doc_id != doc.id and parts[i] not in index.doc(h.doc_id).text][:DEPTH - 1]
        if not negatives:
            continue
        positive = Document(doc.id, " ".join(parts[:i] + parts[i + 1:]), doc.title).full_text
        out.append({"source": doc.id, "query": query, "positive": positive, "negatives": negatives})
    return out


def score_questions(index, scorer, questions: list[dict]) -> list[dict]:
    """Each question with the logit and cosine of its positive (first) and negatives."""
    from earlyrank.indexes.dense import encode

    dense = index.retriever("dense")
    for q in tqdm(questions, desc="pseudo-questions", unit="question"):
        if "logits" in q:
            continue
        texts = [q["positive"], *(index.doc(d).full_text for d in q["negatives"])]
        q["logits"] = scorer.logits([q["query"]] * len(texts), texts).tolist()
        qv = dense.query_vector(q["query"])
        positive = encode([q["positive"]], dense.params, dense.model_path)[0]
        stored = dense.vectors(np.asarray([index.position(d) for d in q["negatives"]], dtype=np.int64))
        q["cosine"] = [float(positive @ qv), *(stored @ qv).astype(float).tolist()]
    return questions


def as_features(questions: list[dict]):
    from earlyrank.engine.fusion_training import QueryFeatures

    out = []
    for n, q in enumerate(questions):
        size = len(q["logits"])
        signals = CandidateSignals(np.asarray(q["cosine"]), np.zeros(size), np.arange(1, size + 1, dtype=float))
        out.append(QueryFeatures(f"pseudo-{n}", [f"p{j}" for j in range(size)], signals,
                                 np.asarray(q["logits"]), np.asarray([1.0] + [0.0] * (size - 1))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", default=["scifact", "xquad-en", "trec-dl-2019-passage",
                                                      "trec-dl-2021-passage", "noveleval-2306"])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=QUESTIONS, help="pseudo-questions a corpus (the rule: 300)")
    parser.add_argument("--no-dev", action="store_true", help="skip the dev check (a smoke run)")
    args = parser.parse_args()

    from earlyrank.cli.fit_commands import load_calibration
    from earlyrank.cli.lab_commands import dev_scores
    from earlyrank.engine.corpora import dataset_index
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.datasets import load_dataset
    from earlyrank.engine.fusion_training import (
        choose_stopping,
        fit,
        fused_scores,
        ndcg_per_query,
        query_features,
        write_fusion,
    )
    from earlyrank.engine.model_files import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    scorer = CrossEncoder.load(model)
    calibration = load_calibration(model)
    report: dict = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
                    "model": scorer.identity(), "sets": {}}
    for name in args.sets:
        data_dir = args.datasets / name
        index = dataset_index(load_dataset(data_dir, check_judged=False))
        work = args.work / name
        work.mkdir(parents=True, exist_ok=True)
        cache = work / "pseudo.json"
        questions = json.loads(cache.read_text()) if cache.is_file() else \
            pseudo_questions(index, args.questions, random.Random(SEED))
        questions = score_questions(index, scorer, questions)
        cache.write_text(json.dumps(questions))
        pseudo = as_features(questions)
        pseudo_qrels = {q.query_id: {q.doc_ids[0]: 1} for q in pseudo}
        fusion = fit([pseudo], KEEP)
        stopping = choose_stopping(fusion, [pseudo], [pseudo_qrels], calibration)
        fusion_dir = work / "model"
        fusion_dir.mkdir(exist_ok=True)
        for f in model.iterdir():
            if f.is_file() and f.name != "fusion.json" and not (fusion_dir / f.name).exists():
                (fusion_dir / f.name).symlink_to(f.resolve())
        row: dict = {"questions": len(pseudo), "fusion": fusion.as_dict(), "stopping": stopping,
                     "pseudo_mrr": {
                         "logit": float(np.mean([1 / (1 + np.sum(q.logits[1:] > q.logits[0])) for q in pseudo])),
                         "cosine": float(np.mean([1 / (1 + np.sum(q.signals.cosine[1:] > q.signals.cosine[0]))
                                                  for q in pseudo]))}}
        write_fusion(fusion_dir, fusion, stopping, {"label-free": row["pseudo_mrr"]}, [f"{name} (pseudo)"])
        if (data_dir / "qrels" / "train.tsv").is_file() and not args.no_dev:
            dev = dev_scores([data_dir], model, 100, None, None)[0]
            feats = query_features(index, dev.scored, dev.qrels)
            fused = ndcg_per_query(feats, dev.qrels, fused_scores(fusion, feats))
            alone = ndcg_per_query(feats, dev.qrels, [calibration.confidence(q.logits) for q in feats])
            row["dev"] = {"queries": len(feats), "fusion": float(np.mean(list(fused.values()))),
                          "confidence alone": float(np.mean(list(alone.values())))}
        report["sets"][name] = row
        w = fusion.weights
        print(f"{name}: {len(pseudo)} pseudo-questions; weights logit {w[0]:.3f} cosine {w[1]:.3f}; pseudo MRR "
              f"logit {row['pseudo_mrr']['logit']:.3f} cosine {row['pseudo_mrr']['cosine']:.3f}"
              + (f"; dev nDCG@10 fusion {row['dev']['fusion']:.4f} vs confidence alone "
                 f"{row['dev']['confidence alone']:.4f}" if "dev" in row else ""), flush=True)
        (args.work / "label_free_fusion.json").write_text(json.dumps(report, indent=1))  # after every set


if __name__ == "__main__":
    main()
