"""`trainwright.registry`: the public face of the model registry (implemented in ``trainwright.models.registry``)."""

from trainwright.models.registry import *  # noqa: F403
from trainwright.models.registry import __all__  # noqa: F401


def __getattr__(name: str):
    import trainwright.models.registry as implementation

    return getattr(implementation, name)  # MLflowModelRegistry, imported on demand
