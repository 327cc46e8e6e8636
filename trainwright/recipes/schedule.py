"""The schedule of a recipe checked against its length, before anything is built or written.

Epoch counts stay plain integers (SuperGradients' keys, counted like the 1-based epochs the user sees):
`lr_warmup_epochs` W, `lr_cooldown_epochs` C and `augmentation.mosaic_off_epoch` M (mosaic for the first M
epochs, off from epoch M + 1) must fit in `max_epochs` E. A schedule that cannot is an error naming the values
and a set that fits, so a shortened recipe never silently trains with a flat learning rate:

- W >= E: the LR would still be warming up when training ends;
- a decaying `lr_mode` with W + C >= E: no epoch is left for the decay (the LR would stay at its peak);
- M >= E: mosaic would never be switched off (null keeps it on on purpose).
"""

from __future__ import annotations

from collections.abc import Mapping

from trainwright.recipes import RecipeError
from trainwright.training.params import DEFAULT_TRAINING_PARAMS

__all__ = ["DECAYING_LR_MODES", "check_schedule", "fitting_schedule"]

# lr_mode values (and their later names) whose LR decays between warmup and cooldown.
DECAYING_LR_MODES = ("cosine", "poly", "step", "exp", "function", "CosineLRScheduler", "PolyLRScheduler",
                     "StepLRScheduler", "ExponentialLRScheduler", "FunctionLRScheduler")


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum > 0 else "an integer >= 0"
        raise RecipeError(f"{name} must be {kind}, got {value!r}")
    return value


def fitting_schedule(max_epochs: int, warmup: int, cooldown: int, mosaic_off_epoch: int | None,
                     decays: bool) -> tuple[int, int, int | None]:
    """(warmup, cooldown, mosaic_off_epoch) no longer than the given ones that fit in `max_epochs` epochs:
    about 10% warmup and 15% cooldown, at least one epoch of each that was asked for, one epoch of decay, and
    mosaic off for the cooldown epochs (at least the last one)."""
    w = min(warmup, max(1, max_epochs // 10)) if warmup else 0
    if w >= max_epochs:
        w = 0
    c = min(cooldown, max(0, max_epochs - w - 1), max(1, round(max_epochs * 0.15))) if cooldown and decays else cooldown
    m = None if mosaic_off_epoch is None else min(mosaic_off_epoch, max(0, max_epochs - max(1, c)))
    return w, c, m


def check_schedule(training_params: Mapping, mosaic_off_epoch) -> None:
    """RecipeError naming the values and a fitting set when the schedule does not fit in max_epochs.

    Args:
        training_params: the recipe's training_params (missing keys take the Trainer's defaults).
        mosaic_off_epoch: the recipe's augmentation.mosaic_off_epoch (None: mosaic never switched off).
    """
    params = {**DEFAULT_TRAINING_PARAMS, **training_params}
    epochs = _count("training_params.max_epochs", params["max_epochs"], 1)
    warmup = _count("training_params.lr_warmup_epochs", params["lr_warmup_epochs"], 0)
    cooldown = _count("training_params.lr_cooldown_epochs", params["lr_cooldown_epochs"], 0)
    if mosaic_off_epoch is not None:
        mosaic_off_epoch = _count("augmentation.mosaic_off_epoch", mosaic_off_epoch, 0)
    if params.get("lr_warmup_steps"):
        warmup = 0  # a warmup counted in batches is not measured in epochs here
    decays = params["lr_mode"] in DECAYING_LR_MODES
    problems = []
    if warmup >= epochs:
        problems.append(f"lr_warmup_epochs={warmup} >= max_epochs: the LR would still be warming up when training ends")
    elif decays and warmup + cooldown >= epochs:
        problems.append(f"lr_warmup_epochs={warmup} + lr_cooldown_epochs={cooldown} >= max_epochs leaves no epoch for "
                        f"the {params['lr_mode']} decay: the LR would stay at its peak")
    if mosaic_off_epoch is not None and mosaic_off_epoch >= epochs:
        problems.append(f"augmentation.mosaic_off_epoch={mosaic_off_epoch} >= max_epochs: mosaic would never be "
                        f"switched off (null keeps it on on purpose)")
    if not problems:
        return
    w, c, m = fitting_schedule(epochs, warmup, cooldown, mosaic_off_epoch, decays)
    fix = [f"training_params.lr_warmup_epochs={w}" if warmup else "",
           f"training_params.lr_cooldown_epochs={c}" if cooldown else "",
           f"augmentation.mosaic_off_epoch={m}" if mosaic_off_epoch is not None else ""]
    raise RecipeError(f"the schedule does not fit in training_params.max_epochs={epochs}: {'; '.join(problems)}. "
                      f"For {epochs} epochs set e.g. {' '.join(f for f in fix if f)}, or raise "
                      f"training_params.max_epochs")
