"""earlyrank: retrieve-then-rerank question answering with a calibrated, early-stopping cross-encoder.

Importing `engine` loads neither torch nor faiss; the code that needs them imports them when first used.
"""

from earlyrank.engine.calibration import Calibration, brier_score, expected_calibration_error, fit_platt
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import Dataset, DatasetError, load_dataset
from earlyrank.engine.evaluation import evaluate_run
from earlyrank.engine.model_files import ModelLoadError
from earlyrank.engine.pipeline import Answer, Pipeline
from earlyrank.engine.rerank import RerankResult, rerank
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.stopping import Decision, FullRerank, RankPrior, ResidualRisk, Threshold, TopKConfident
from earlyrank.indexes.types import Document, Hit, Query

__all__ = [
    "Answer", "Calibration", "CrossEncoder", "Dataset", "DatasetError", "Decision", "Document", "FullRerank",
    "Hit", "ModelLoadError", "Pipeline", "Query", "RankPrior", "RerankResult", "ResidualRisk", "ScoredPairs",
    "Threshold", "TopKConfident", "brier_score", "evaluate_run", "expected_calibration_error", "fit_platt",
    "load_dataset", "rerank",
]
