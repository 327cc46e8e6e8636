"""The training engine: `Trainer`, its parameters, EMA, checkpoints and the loop's collaborators."""

from trainwright.training.params import DEFAULT_TRAINING_PARAMS
from trainwright.training.trainer import Trainer

__all__ = ["Trainer", "DEFAULT_TRAINING_PARAMS"]
