"""earlyrank: retrieve-then-rerank question answering with a calibrated, early-stopping cross-encoder.

Importing `engine` loads neither torch nor faiss; the code that needs them imports them when first used.
"""

from engine.calibration import Calibration, brier_score, expected_calibration_error, fit_platt
from engine.datasets import Dataset, DatasetError, load_dataset
from engine.evaluation import evaluate_run
from engine.pipeline import Answer, Pipeline
from engine.rerank import RerankResult, rerank
from engine.reranker import CrossEncoder, ModelLoadError, ScoredPairs
from engine.stopping import Decision, FullRerank, RankPrior, ResidualRisk, Threshold, TopKConfident
from engine.types import Document, Hit, Query

__all__ = [
    "Answer", "Calibration", "CrossEncoder", "Dataset", "DatasetError", "Decision", "Document", "FullRerank",
    "Hit", "ModelLoadError", "Pipeline", "Query", "RankPrior", "RerankResult", "ResidualRisk", "ScoredPairs",
    "Threshold", "TopKConfident", "brier_score", "evaluate_run", "expected_calibration_error", "fit_platt",
    "load_dataset", "rerank",
]
