"""`trainwright train [RECIPE] [key=value ...]` and `trainwright train --resume EXPERIMENT_DIR [key=value ...]`.

The order is what makes a run safe: every value of the configuration is checked (`plan_training`), then the
data are loaded and checked, and only then is the experiment directory created (atomically, suffixed `_2`,
`_3`, ... when taken) and locked for the run; a resume locks the run's existing directory. Nothing is
written before the run is known to be able to start. SIGTERM interrupts like Ctrl-C; both print the command
that continues the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from trainwright.cli.report import TrainingReport
from trainwright.cli.resume import RECIPE_FILE, check_same_run, recipe_for_resume, resume_command
from trainwright.logging import atomic_write
from trainwright.nn.checkpoint_keys import INTERRUPTED_CHECKPOINT, LATEST_CHECKPOINT
from trainwright.recipes import DEFAULT_RECIPE, RecipeError, load_recipe
from trainwright.recipes.checks import check_recipe_values
from trainwright.recipes.detection import DetectionRecipe, build_detection_run, read_detection_recipe
from trainwright.training.params import DEFAULT_TRAINING_PARAMS

__all__ = ["split_recipe_and_overrides", "TrainPlan", "plan_training", "run_train"]


def split_recipe_and_overrides(args: list[str]) -> tuple[str, list[str]]:
    """The recipe (the one argument without '=', default DEFAULT_RECIPE) and the key=value overrides."""
    recipes = [a for a in args if "=" not in a]
    if len(recipes) > 1:
        raise RecipeError(f"expected at most one recipe and key=value overrides, got recipes {recipes}; "
                          f"an override must look like key=value")
    return (recipes[0] if recipes else DEFAULT_RECIPE), [a for a in args if "=" in a]


@dataclass
class TrainPlan:
    """A run checked from end to end before anything is written."""

    recipe: DictConfig  # the recipe the run follows (overrides applied)
    spec: DetectionRecipe
    resume_dir: Path | None  # the experiment directory a resume continues; None for a new run
    recipe_to_save: DictConfig | None  # what recipe.yaml becomes (None: it stays as it is)


def plan_training(args: list[str], resume_dir: str | None = None) -> TrainPlan:
    """Read and check the whole configuration of a run (and, to resume, its checkpoint); writes nothing."""
    from trainwright.training.checkpointing import read_resume_checkpoint
    from trainwright.training.params import resolve_training_params, resume_requested

    recipe_name, overrides = split_recipe_and_overrides(args)
    named = len(overrides) < len(args)  # a recipe was given, not defaulted
    if resume_dir is not None:
        if named:
            raise RecipeError(f"--resume reads the recipe from {Path(resume_dir) / RECIPE_FILE}; give only key=value "
                              f"overrides, not the recipe {recipe_name!r}")  # fmt: skip
        recipe, to_save = recipe_for_resume(resume_dir, overrides)
    else:
        recipe, to_save = load_recipe(recipe_name, overrides), None
    check_recipe_values(recipe)
    spec = read_detection_recipe(recipe)
    params = resolve_training_params(spec.training_params)
    directory = Path(spec.ckpt_root_dir).expanduser().absolute() / spec.experiment_name
    if resume_dir is None and params.resume is True:  # resume as a training parameter: the same run only
        if not named and (directory / RECIPE_FILE).is_file():  # no recipe named: the run's own
            kept = [o for o in overrides if o.partition("=")[0] not in
                    ("experiment_name", "ckpt_root_dir", "training_params.resume")]  # fmt: skip
            return plan_training(kept, str(directory))
        if not directory.is_dir():
            raise FileNotFoundError(f"training_params.resume=true: no experiment directory {directory} to resume")
        to_save = check_same_run(directory, recipe)
    resuming = resume_dir is not None or params.resume is True
    if resume_requested(params):
        read_resume_checkpoint(params, str(directory))  # a missing, corrupt or finished checkpoint: named now
    return TrainPlan(recipe, spec, directory if resuming else None, to_save)


@contextlib.contextmanager
def _experiment_dir(plan: TrainPlan) -> Iterator[Path]:
    """The run's directory, locked for the run: the resumed one, or a new one made without a race."""
    from trainwright.training.experiment_dir import claim_experiment_dir, create_experiment_dir

    if plan.resume_dir is not None:
        with claim_experiment_dir(plan.resume_dir, create=False) as directory:
            yield directory
        return
    directory = create_experiment_dir(os.path.abspath(os.path.expanduser(plan.spec.ckpt_root_dir)),
                                      plan.spec.experiment_name)  # fmt: skip
    with claim_experiment_dir(directory) as directory:
        yield directory


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the run lasts, SIGTERM interrupts like Ctrl-C: the run saves, ends and prints how to continue."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _seed(seed: int) -> None:
    """Seed python, numpy and torch before the model is built: the same recipe starts from the same weights."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _write_recipe(path: Path, recipe: DictConfig) -> None:
    text = OmegaConf.to_yaml(recipe)
    atomic_write(path, lambda f: f.write(text.encode()))


def run_train(args: list[str], resume_dir: str | None = None) -> int:
    """Train (or resume); prints a table per epoch, a summary, and the experiment directory as the last line."""
    import torch

    from trainwright.distributed import broadcast_object, is_main_process, main_process_first
    from trainwright.training import Trainer
    from trainwright.training.distributed_run import resolve_device

    start = time.perf_counter()
    plan = plan_training(args, resume_dir)
    spec = plan.spec
    if spec.num_threads:
        torch.set_num_threads(int(spec.num_threads))
    device = resolve_device(spec.device)  # under torchrun: joins the job (gloo on CPU, nccl on CUDA)
    main = is_main_process()  # under torchrun only rank 0 prints and writes
    say = print if main else _quiet
    _seed(spec.training_params.get("seed", DEFAULT_TRAINING_PARAMS["seed"]))  # the model's initial weights too
    what = f"resuming {plan.resume_dir}" if plan.resume_dir is not None else f"recipe {split_recipe_and_overrides(args)[0]}"
    say(f"{what}: {spec.architecture} on {spec.dataset['type']} data, input {spec.dataset['input_size']}, "
        f"{spec.training_params.get('max_epochs')} epochs")
    with main_process_first():  # rank 0 generates (or downloads) what the others then only read
        run = build_detection_run(spec)
    say(f"{len(run.train_loader.dataset)} training images, {len(run.valid_loader.dataset)} validation images, "
        f"classes {run.class_names}")
    with _sigterm_interrupts(), (_experiment_dir(plan) if main else contextlib.nullcontext()) as claimed:
        experiment_dir = Path(broadcast_object(str(claimed) if main else None))  # rank 0's directory
        if main and plan.resume_dir is None:
            plan.recipe.experiment_name = experiment_dir.name  # the recipe.yaml of a run names its directory
            _write_recipe(experiment_dir / RECIPE_FILE, plan.recipe)
        elif main and plan.recipe_to_save is not None:
            _write_recipe(experiment_dir / RECIPE_FILE, plan.recipe_to_save)
        trainer = Trainer(experiment_dir.name, device, ckpt_root_dir=str(experiment_dir.parent))
        # The table replaces the default progress bar (it is a ProgressReporter).
        report = TrainingReport(show=main and not run.training_params.get("silent_mode", False), plot=main)
        params = {**run.training_params, "phase_callbacks": [*run.training_params["phase_callbacks"], report]}
        try:
            results = trainer.train(run.model, params, run.train_loader, run.valid_loader,
                                    processing_params=run.processing_params)
        except BaseException:
            if main and (experiment_dir / LATEST_CHECKPOINT).is_file():
                print(f"The run stopped; continue it from its last finished epoch with:\n  "
                      f"{resume_command(experiment_dir)}", file=sys.stderr)  # fmt: skip
            raise
    if main:
        _print_summary(trainer, results, experiment_dir, time.perf_counter() - start)
        if trainer.interrupted:
            _print_resume(trainer, experiment_dir)
        print(experiment_dir)
    _leave_process_group()
    if not trainer.interrupted:
        return 0
    return 128 + (trainer.interrupt_signal or signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM


def _print_resume(trainer, experiment_dir: Path) -> None:
    if (experiment_dir / LATEST_CHECKPOINT).is_file():
        print(f"interrupted: {LATEST_CHECKPOINT} holds the {trainer.state.epochs_done} finished epoch(s) "
              f"({INTERRUPTED_CHECKPOINT} the weights of the interruption); continue with:\n  "
              f"{resume_command(experiment_dir)}")  # fmt: skip
    else:
        print(f"interrupted before the first epoch ended: nothing to resume ({INTERRUPTED_CHECKPOINT} holds the "
              "weights of the interruption); start the run again")  # fmt: skip


def _quiet(*args, **kwargs) -> None:
    """`print` of the processes other than rank 0."""


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _print_summary(trainer, results: dict, experiment_dir: Path, seconds: float) -> None:
    from trainwright.cli.train_summary import print_training_summary

    print_training_summary(trainer, results, experiment_dir, seconds)
