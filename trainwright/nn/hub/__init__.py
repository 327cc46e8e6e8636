"""Published weights: downloading (capped, verified, atomic), the hash-checked cache, and the registry."""

from trainwright.nn.hub.cache import MANIFEST_NAME, HashManifest, cache_file_name, fetch_url, weights_cache_dir
from trainwright.nn.hub.download import DownloadError, DownloadLimits, download_to_file, remove_stale_parts
from trainwright.nn.hub.published import register_published_weights
from trainwright.nn.hub.registry import (
    PRETRAINED_NUM_CLASSES,
    PRETRAINED_WEIGHTS,
    MissingPretrainedWeightsException,
    PretrainedWeights,
    fetch_pretrained_weights,
    pretrained_weights_entry,
    register_pretrained_weights,
    register_state_dict_adapter,
    state_dict_adapter,
)

register_published_weights()

__all__ = [
    "DownloadError",
    "DownloadLimits",
    "HashManifest",
    "MANIFEST_NAME",
    "MissingPretrainedWeightsException",
    "PRETRAINED_NUM_CLASSES",
    "PRETRAINED_WEIGHTS",
    "PretrainedWeights",
    "cache_file_name",
    "download_to_file",
    "fetch_pretrained_weights",
    "fetch_url",
    "pretrained_weights_entry",
    "register_pretrained_weights",
    "register_state_dict_adapter",
    "remove_stale_parts",
    "state_dict_adapter",
    "weights_cache_dir",
]
