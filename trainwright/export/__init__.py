"""`trainwright.export`: the public face of ONNX export and ONNX Runtime inference.

The implementation lives in ``trainwright.models.export`` (the domain layer, beside the architectures it
exports, so that callbacks and the command line below and above it may use it); this module only re-exports it.
"""

from trainwright.models.export import *  # noqa: F403
from trainwright.models.export import __all__  # noqa: F401
