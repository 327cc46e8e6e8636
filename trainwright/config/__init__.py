"""Configuration objects and the unused-parameter check.

- `HpmStruct` (`hpm_struct.py`): an attribute-access bag of hyper-parameters with an optional schema.
- Access-counting views (`access_counter.py`): wrap a dict, list, tuple, OmegaConf `DictConfig` /
  `ListConfig` or `HpmStruct` and record every key read, by its dotted path (``a.b[0].c``).
- The check (`unused_params.py`): ``with raise_if_unused_params(cfg) as cfg:`` (or `warn_if_unused_params`)
  reports, when the block ends, every key that was never read, with the closest key the code asked for when
  it looks like a typo.
"""

from trainwright.config.access_counter import AccessCounterDict, AccessCounterList, AccessCounterMixin
from trainwright.config.hpm_struct import HpmStruct
from trainwright.config.unused_params import (
    ConfigInspector,
    UnusedConfigParamException,
    raise_if_unused_params,
    warn_if_unused_params,
)

__all__ = [
    "AccessCounterDict",
    "AccessCounterList",
    "AccessCounterMixin",
    "ConfigInspector",
    "HpmStruct",
    "UnusedConfigParamException",
    "raise_if_unused_params",
    "warn_if_unused_params",
]
