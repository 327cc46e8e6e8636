"""Where trained models are stored and found again: a local folder registry, or MLflow's (the `mlflow` extra).

``open_registry(uri)``: None -> the local registry at $TRAINWRIGHT_REGISTRY or ./registry; ``mlflow:<tracking
URI>`` (e.g. ``mlflow:file:///tmp/mlruns``, ``mlflow:http://host:5000``) -> MLflow; anything else -> a local
registry in that folder. Both kinds have push / list / show / pull and never overwrite a version.
"""

from __future__ import annotations

import os

from trainwright.models.registry.local import CARD_NAME, LocalModelRegistry, ModelVersion, default_registry_root
from trainwright.models.registry.names import check_name

# MLflowModelRegistry is importable from here too, on demand (mlflow is an optional extra).
__all__ = ["CARD_NAME", "LocalModelRegistry", "ModelVersion", "check_name", "default_registry_root", "open_registry"]

MLFLOW_PREFIX = "mlflow:"


def open_registry(uri: str | os.PathLike | None = None):
    """A registry from a folder path, ``mlflow:<tracking URI>``, or None for the default local folder."""
    if isinstance(uri, str) and uri.startswith(MLFLOW_PREFIX):
        from trainwright.models.registry.mlflow_registry import MLflowModelRegistry

        tracking_uri = uri[len(MLFLOW_PREFIX):]
        if not tracking_uri:
            raise ValueError(f"registry {uri!r} names no MLflow tracking URI, e.g. mlflow:file:///path/to/mlruns")
        return MLflowModelRegistry(tracking_uri)
    return LocalModelRegistry(uri)


def __getattr__(name: str):
    if name == "MLflowModelRegistry":  # imported on demand: mlflow is an optional extra
        from trainwright.models.registry.mlflow_registry import MLflowModelRegistry

        return MLflowModelRegistry
    raise AttributeError(name)
