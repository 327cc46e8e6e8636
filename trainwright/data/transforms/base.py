"""The transform interface of the detection pipeline."""

from __future__ import annotations

import numpy as np

from trainwright.data.sample import DetectionSample


class DetectionTransform:
    """A callable ``(sample, rng) -> sample`` that keeps boxes consistent with the image.

    Class attributes a dataset reads:
        additional_samples_count: how many other (loaded, untransformed) samples the transform mixes in;
            the dataset puts them in ``sample.additional_samples`` before the call.
        mosaic_stage: whether ``set_mosaic_enabled(False)`` turns the transform off (a no-op).
    """

    additional_samples_count: int = 0
    mosaic_stage: bool = False

    def __init__(self):
        self.enabled = True

    def __call__(self, sample: DetectionSample, rng: np.random.Generator) -> DetectionSample:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def check_probability(name: str, value: float) -> float:
    """``value`` as a float when it lies in [0, 1], else a ValueError naming the argument."""
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_size(name: str, value) -> tuple[int, int]:
    """``value`` (an int or an (height, width) pair of positive ints) as a (height, width) tuple."""
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v <= 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair of positive ints, got {value!r}")
    return int(pair[0]), int(pair[1])
