"""The policies of a run, each a default callback that owns its state (see `trainwright.training.default_callbacks`)."""

from trainwright.training.policies.best_checkpoint import BestCheckpointKeeper
from trainwright.training.policies.ema_update import EMAUpdate
from trainwright.training.policies.epoch_checkpoints import EpochCheckpoints
from trainwright.training.policies.model_averaging import ModelAveraging
from trainwright.training.policies.nan_guard import NaNGuard
from trainwright.training.policies.pre_prediction import PrePrediction
from trainwright.training.policies.precise_bn import PreciseBN
from trainwright.training.policies.progress import ProgressBar, ProgressReporter
from trainwright.training.policies.results import ResultsWriter

__all__ = [
    "BestCheckpointKeeper",
    "EMAUpdate",
    "EpochCheckpoints",
    "ModelAveraging",
    "NaNGuard",
    "PreciseBN",
    "PrePrediction",
    "ProgressBar",
    "ProgressReporter",
    "ResultsWriter",
]
