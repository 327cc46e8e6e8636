"""`trainwright train [RECIPE] [key=value ...]`: train a detection model as a recipe describes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from trainwright.cli.report import CURVES_FILE, TrainingReport
from trainwright.logging import RESULTS_CSV, TEXT_LOG, atomic_write
from trainwright.nn.checkpoint_keys import BEST_CHECKPOINT, LATEST_CHECKPOINT
from trainwright.recipes import DEFAULT_RECIPE, RecipeError, load_recipe
from trainwright.recipes.detection import build_detection_run, read_detection_recipe

__all__ = ["split_recipe_and_overrides", "unique_experiment_name", "run_train"]


def split_recipe_and_overrides(args: list[str]) -> tuple[str, list[str]]:
    """The recipe (the one argument without '=', default DEFAULT_RECIPE) and the key=value overrides."""
    recipes = [a for a in args if "=" not in a]
    if len(recipes) > 1:
        raise RecipeError(f"expected at most one recipe and key=value overrides, got recipes {recipes}; "
                          f"an override must look like key=value")
    return (recipes[0] if recipes else DEFAULT_RECIPE), [a for a in args if "=" in a]


def unique_experiment_name(root: str, name: str) -> str:
    """`name`, or `name_2`, `name_3`, ... : the first whose directory under `root` does not exist yet."""
    candidate, n = name, 1
    while os.path.exists(os.path.join(root, candidate)):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def run_train(args: list[str]) -> int:
    """Train; prints a table per epoch, a summary, and the experiment directory as the last line."""
    import torch

    from trainwright.distributed import broadcast_object, is_main_process, main_process_first
    from trainwright.training import Trainer
    from trainwright.training.distributed_run import resolve_device
    from trainwright.training.params import resume_requested

    start = time.perf_counter()
    recipe_name, overrides = split_recipe_and_overrides(args)
    recipe = load_recipe(recipe_name, overrides)
    spec = read_detection_recipe(recipe)
    if spec.num_threads:
        torch.set_num_threads(int(spec.num_threads))
    device = resolve_device(spec.device)  # under torchrun: joins the job (gloo on CPU, nccl on CUDA)
    main = is_main_process()  # under torchrun only rank 0 prints and writes
    say = print if main else _quiet
    resume = resume_requested(spec.training_params)
    name = spec.experiment_name if resume else unique_experiment_name(spec.ckpt_root_dir, spec.experiment_name)
    name = broadcast_object(name)  # rank 0's choice, before its folder exists
    say(f"recipe {recipe_name}: {spec.architecture} on {spec.dataset['type']} data, "
        f"input {spec.dataset['input_size']}, {spec.training_params.get('max_epochs')} epochs")
    with main_process_first():  # rank 0 generates (or downloads) what the others then only read
        run = build_detection_run(spec)
    say(f"{len(run.train_loader.dataset)} training images, {len(run.valid_loader.dataset)} validation images, "
        f"classes {run.class_names}")
    trainer = Trainer(name, device, ckpt_root_dir=os.path.abspath(spec.ckpt_root_dir))
    experiment_dir = Path(trainer.experiment_dir)
    if main:
        experiment_dir.mkdir(parents=True, exist_ok=True)
        text = OmegaConf.to_yaml(recipe)
        atomic_write(experiment_dir / "recipe.yaml", lambda f: f.write(text.encode()))
    # The table replaces the default progress bar (it is a ProgressReporter).
    report = TrainingReport(show=main and not run.training_params.get("silent_mode", False), plot=main)
    params = {**run.training_params, "phase_callbacks": [*run.training_params["phase_callbacks"], report]}
    results = trainer.train(run.model, params, run.train_loader, run.valid_loader,
                            processing_params=run.processing_params)
    if main:
        _print_summary(trainer, results, experiment_dir, time.perf_counter() - start)
        print(experiment_dir)
    _leave_process_group()
    return 130 if trainer.interrupted else 0


def _quiet(*args, **kwargs) -> None:
    """`print` of the processes other than rank 0."""


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _print_summary(trainer, results: dict, experiment_dir: Path, seconds: float) -> None:
    final = ", ".join(f"{k} {results[k]:.4f}" for k in ("mAP@0.50", "mAP@0.50:0.95") if k in results)
    print(f"done in {seconds / 60:.1f} min" + (" (interrupted)" if trainer.interrupted else "")
          + (f"; last validation: {final}" if final else "")
          + (f"; best {trainer.state.metric_to_watch} {trainer.best_metric:.4f}" if trainer.best_metric is not None
             else ""))
    files = [("checkpoints", f"{BEST_CHECKPOINT}, {LATEST_CHECKPOINT}"), ("per-epoch results", RESULTS_CSV),
             ("loss and mAP curves", CURVES_FILE), ("predictions drawn", "visualizations/"),
             ("TensorBoard", f"tensorboard --logdir {experiment_dir}"), ("resolved recipe", "recipe.yaml"),
             ("log", TEXT_LOG)]
    for what, where in files:
        print(f"  {what:<20} {where}")
