"""Recipes: YAML files describing a whole training run, shipped with the package and overridable key by key.

A recipe is named by its file stem (``yolox_n_shapes`` is ``recipes/yolox_n_shapes.yaml``) or given as a
path to any YAML file. Overrides are OmegaConf dotted ``key=value`` strings (``training_params.max_epochs=3``,
``dataset.input_size=[128,128]``); values are parsed as YAML. A key that the run never reads (a typo, or a
key of another kind of dataset) is reported by `trainwright.recipes.detection.read_detection_recipe`, which reads
the recipe inside `raise_if_unused_params`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["DEFAULT_RECIPE", "RECIPES_DIR", "RecipeError", "list_recipes", "load_recipe", "parse_overrides",
           "recipe_path"]

RECIPES_DIR = Path(__file__).resolve().parent
DEFAULT_RECIPE = "yolox_n_shapes"


class RecipeError(ValueError):
    """A recipe that cannot be found, parsed or overridden as asked; the message names the culprit."""


def list_recipes() -> list[str]:
    """Names of the recipes shipped with trainwright, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML file of a shipped recipe name, or ``name_or_path`` itself when it is an existing file."""
    text = os.fspath(name_or_path)
    if text in list_recipes():
        return RECIPES_DIR / f"{text}.yaml"
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise RecipeError(f"recipe {text!r} is neither a shipped recipe ({', '.join(list_recipes())}) nor a YAML file")


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """``["a.b=1", "c=[1,2]"]`` -> a DictConfig; a malformed item (no ``=``, a value that is not YAML, a YAML
    tag) is a RecipeError naming it."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or key != key.strip():
            raise RecipeError(f"override {item!r} must look like key=value, e.g. training_params.max_epochs=3")
        _check_yaml_value(item, value)
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        raise RecipeError(f"cannot parse overrides {list(overrides)}: {_first_line(err)}") from err


def _first_line(error: Exception) -> str:
    problem = getattr(error, "problem", None) or str(error)
    return problem.strip().splitlines()[0] if problem.strip() else type(error).__name__


def _check_yaml_value(item: str, value: str) -> None:
    """A RecipeError naming `item` when `value` is not one plain YAML value (a syntax error, or a tag)."""
    try:
        tags = [token.value for token in yaml.scan(value) if isinstance(token, yaml.TagToken)]
        if tags:
            raise RecipeError(f"override {item!r}: YAML tags ({''.join(tags[0])}) are not accepted; write the "
                              "plain value")  # fmt: skip
        yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise RecipeError(f"override {item!r}: the value is not valid YAML ({_first_line(err)}); quote a "
                          f"value that is meant as text, e.g. key='\"text\"'") from None  # fmt: skip


def load_recipe(name_or_path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """The recipe ``name_or_path`` (default: DEFAULT_RECIPE) with ``overrides`` applied, all interpolations resolved.

    An override may add a key the recipe lacks (the run's unused-key check catches misspellings); a value
    replacing a section by a scalar (or the reverse) is a RecipeError naming the key.
    """
    path = recipe_path(name_or_path if name_or_path is not None else DEFAULT_RECIPE)
    try:
        recipe = OmegaConf.load(path)
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as err:
        raise RecipeError(f"cannot read recipe {str(path)!r}: {err}") from err
    if not isinstance(recipe, DictConfig):
        raise RecipeError(f"recipe {str(path)!r} must be a YAML mapping at the top level, got {type(recipe).__name__}")
    for item in overrides:
        _check_override_kind(recipe, item)
    try:
        merged = OmegaConf.merge(recipe, parse_overrides(overrides))
        OmegaConf.resolve(merged)
    except OmegaConfBaseException as err:
        raise RecipeError(f"cannot apply overrides {list(overrides)} to recipe {str(path)!r}: {err}") from err
    return merged


def _check_override_kind(recipe: DictConfig, item: str) -> None:
    """A section may only be replaced by a mapping (and a value by a value): else name the key."""
    key = item.partition("=")[0]
    current = OmegaConf.select(recipe, key, default=None, throw_on_missing=False)
    if isinstance(current, DictConfig):
        new = parse_overrides([item])
        value = OmegaConf.select(new, key)
        if not isinstance(value, DictConfig) and value is not None:
            raise RecipeError(f"override {item!r}: {key} is a section of the recipe, not a single value; "
                              f"set its keys instead, e.g. {key}.<name>=...")
