"""earlyrank: retrieve-then-rerank question answering with a calibrated, early-stopping cross-encoder.

Subpackages, in layers (each imports only the ones below it; `.importlinter` checks this):
- `earlyrank.cli`: the `earlyrank` command;
- `earlyrank.api`: the FastAPI service;
- `earlyrank.engine`: reranking, stopping, calibration and the pipeline (and, apart from them, training,
  tuning and benchmarking);
- `earlyrank.indexes`: recall (BM25, dense, hybrid) and the index on disk.

Importing any of them loads neither torch nor faiss.
"""
