"""Experiment loggers (the `sg_logger` interface) and the files of the experiment directory."""

from trainwright.logging.base import AbstractSGLogger, NullSGLogger
from trainwright.logging.files import (
    RESULTS_CSV,
    TEXT_LOG,
    ResultsCSV,
    atomic_torch_save,
    atomic_write,
    attach_text_log,
    interrupts_deferred,
    remove_leftover_temp_files,
)
from trainwright.logging.names import check_file_name

__all__ = [
    "AbstractSGLogger",
    "NullSGLogger",
    "RESULTS_CSV",
    "ResultsCSV",
    "SG_LOGGERS",
    "TEXT_LOG",
    "TensorBoardSGLogger",
    "atomic_torch_save",
    "atomic_write",
    "attach_text_log",
    "build_sg_logger",
    "check_file_name",
    "interrupts_deferred",
    "remove_leftover_temp_files",
]


def _tensorboard(**kwargs):
    from trainwright.logging.tensorboard import TensorBoardSGLogger

    return TensorBoardSGLogger(**kwargs)


# name -> factory(experiment_dir=..., **sg_logger_params); others may add theirs.
SG_LOGGERS = {"base_sg_logger": _tensorboard, "tensorboard": _tensorboard, "null": lambda **kw: NullSGLogger()}


def build_sg_logger(sg_logger, experiment_dir: str, **params) -> AbstractSGLogger:
    """A logger from a registered name, or `sg_logger` itself when it already implements the interface."""
    if isinstance(sg_logger, AbstractSGLogger):
        return sg_logger
    if isinstance(sg_logger, str) and sg_logger in SG_LOGGERS:
        return SG_LOGGERS[sg_logger](experiment_dir=experiment_dir, **params)
    raise ValueError(f"sg_logger={sg_logger!r}: expected an AbstractSGLogger or one of {sorted(SG_LOGGERS)}")


def __getattr__(name):
    if name == "TensorBoardSGLogger":
        from trainwright.logging.tensorboard import TensorBoardSGLogger

        return TensorBoardSGLogger
    raise AttributeError(f"module 'trainwright.logging' has no attribute {name!r}")
