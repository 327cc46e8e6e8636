"""Resuming a run of `trainwright train` from its experiment directory alone.

`trainwright train --resume DIR` reads `DIR/recipe.yaml` (the recipe the run was started with, overrides
applied) and continues from `DIR/ckpt_latest.pth`. Only the keys of RESUME_OVERRIDES may be changed on the
way: they change how or where the run computes, or how long it runs, not what it trains; any other key would
make the checkpoint continue a different training and is refused, naming it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from trainwright.recipes import RecipeError, load_recipe

__all__ = ["RECIPE_FILE", "RESUME_OVERRIDES", "recipe_for_resume", "check_same_run", "resume_command"]

RECIPE_FILE = "recipe.yaml"  # the recipe of a run, in its experiment directory
RESUME_OVERRIDES = (
    "training_params.max_epochs",  # train longer (the LR schedule stretches to the new end)
    "training_params.silent_mode",
    "device",
    "num_threads",
    "train_dataloader.num_workers",
    "valid_dataloader.num_workers",
    "visualization.freq",
    "visualization.num_images",
    "dataset.cache_images",
    "dataset.root",  # the data moved: where the shapes cache or the COCO files are now
    "dataset.train_images_dir",
    "dataset.train_annotations",
    "dataset.val_images_dir",
    "dataset.val_annotations",
)
# Keys that name the run or the resume itself: never compared between a recipe and the run's own.
_RUN_KEYS = ("experiment_name", "ckpt_root_dir", "training_params.resume", "training_params.resume_path")


def resume_command(experiment_dir: str | Path) -> str:
    """The command that continues the run of `experiment_dir`, quoted for a POSIX shell."""
    return f"trainwright train --resume {shlex.quote(str(experiment_dir))}"


def _flatten(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, Mapping):
        out: dict[str, object] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def _plain(recipe: DictConfig) -> dict:
    return OmegaConf.to_container(recipe, resolve=True)


def _with_allowed_changes(saved: DictConfig, recipe: DictConfig) -> DictConfig | None:
    """`saved` with the RESUME_OVERRIDES values of `recipe`, or None when none of them changed."""
    before, after, updated = _flatten(_plain(saved)), _flatten(_plain(recipe)), saved.copy()
    changed = False
    for key in RESUME_OVERRIDES:
        if key in after and after.get(key) != before.get(key):
            OmegaConf.update(updated, key, after[key], force_add=True)
            changed = True
    return updated if changed else None


def recipe_for_resume(experiment_dir: str | Path, overrides: Sequence[str]) -> tuple[DictConfig, DictConfig | None]:
    """(the recipe that continues the run of `experiment_dir`, the updated recipe.yaml to write or None).

    The recipe is the directory's recipe.yaml with `overrides` (only RESUME_OVERRIDES keys) applied, its
    experiment_name and ckpt_root_dir pointing at the directory, and training_params.resume on.
    """
    directory = Path(experiment_dir).expanduser().absolute()
    if not directory.is_dir():
        raise FileNotFoundError(f"--resume {experiment_dir}: no such experiment directory")
    saved_path = directory / RECIPE_FILE
    if not saved_path.is_file():
        raise FileNotFoundError(f"--resume {experiment_dir}: it holds no {RECIPE_FILE}, so it was not written by "
                                "`trainwright train`; resume it with its recipe and training_params.resume=true")  # fmt: skip
    saved = load_recipe(saved_path)
    recipe = load_recipe(saved_path, overrides)
    differing = _differences(saved, recipe)
    if differing:
        raise RecipeError(f"--resume {experiment_dir}: {_describe(differing)} would change what the run trains, so "
                          f"it would no longer continue the same training; --resume can change only "
                          f"{', '.join(RESUME_OVERRIDES)}")  # fmt: skip
    recipe.experiment_name, recipe.ckpt_root_dir = directory.name, str(directory.parent)
    OmegaConf.update(recipe, "training_params.resume", True, force_add=True)
    return recipe, _with_allowed_changes(saved, recipe)


def check_same_run(experiment_dir: str | Path, recipe: DictConfig) -> DictConfig | None:
    """For training_params.resume=true: raise a RecipeError naming the keys where `recipe` differs from the
    run's own recipe.yaml (other than RESUME_OVERRIDES); returns the updated recipe.yaml to write, or None
    (also when the directory has no recipe.yaml: then nothing is compared and nothing written)."""
    saved_path = Path(experiment_dir) / RECIPE_FILE
    if not saved_path.is_file():
        return None
    saved = load_recipe(saved_path)
    differing = _differences(saved, recipe)
    if differing:
        raise RecipeError(f"training_params.resume=true: this recipe differs from the run's {saved_path} in "
                          f"{_describe(differing)}; to continue that run with its own recipe, use: "
                          f"{resume_command(Path(experiment_dir).absolute())}")  # fmt: skip
    return _with_allowed_changes(saved, recipe)


def _differences(saved: DictConfig, recipe: DictConfig) -> list[tuple[str, object, object]]:
    """(dotted key, value in `saved`, value in `recipe`) of each key a resume may not change, sorted."""
    before, after = _flatten(_plain(saved)), _flatten(_plain(recipe))
    ignored = set(RESUME_OVERRIDES) | set(_RUN_KEYS)
    keys = sorted(k for k in before.keys() | after.keys() if k not in ignored and before.get(k) != after.get(k))
    return [(k, before.get(k, "(unset)"), after.get(k, "(unset)")) for k in keys]


def _describe(differing: list[tuple[str, object, object]]) -> str:
    shown = "; ".join(f"{key}={new!r} (the run has {old!r})" for key, old, new in differing[:3])
    return shown + (f" and {len(differing) - 3} more" if len(differing) > 3 else "")
