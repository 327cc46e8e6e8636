"""Everything a registry version holds for a trained detector: checkpoint, ONNX exports, report, model card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from torch import nn

from trainwright._version import __version__
from trainwright.models.export.onnx_export import export_onnx
from trainwright.models.export.optimize import optimization_report

__all__ = ["package_model", "git_revision", "REPORT_NAME"]

REPORT_NAME = "optimization.json"


def git_revision(folder: str | os.PathLike = ".") -> str | None:
    """The commit checked out in `folder`'s git work tree (with "+dirty" when it has changes), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def package_model(model: nn.Module, checkpoint: str | os.PathLike, work_dir: str | os.PathLike, *,
                  architecture: str, class_names: list[str], input_size: tuple[int, int], batch_size: int = 1,
                  quantization: str = "static", calibration: Iterable | None = None,
                  loader: Iterable | None = None, postprocess: dict | None = None, metrics: dict | None = None,
                  opset: int | None = None, latency_runs: int = 10, max_batches: int | None = None,
                  ) -> tuple[dict[str, Path], dict]:  # fmt: skip
    """Write the ONNX export, its optimised and INT8 versions and their report into `work_dir`.

    Returns ({stored file name: path}, model card) for a registry push; the card holds architecture,
    class_names, input_size, metrics (the given ones plus the ONNX mAPs), git_revision and versions.
    """
    work_dir = Path(work_dir)
    onnx_path = export_onnx(model, work_dir / "model.onnx", input_size, dynamic_batch=True, opset=opset,
                            class_names=class_names, metadata={"architecture": architecture,
                                                               "postprocess": dict(postprocess or {})})
    report = optimization_report(onnx_path, work_dir, batch_size=batch_size, quantization=quantization,
                                 calibration=calibration, loader=loader, postprocess=postprocess,
                                 runs=latency_runs, max_batches=max_batches)
    (work_dir / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    checkpoint_copy = work_dir / Path(checkpoint).name
    if Path(checkpoint).resolve() != checkpoint_copy.resolve():
        shutil.copyfile(checkpoint, checkpoint_copy)
    files = {path.name: path for path in (checkpoint_copy, onnx_path, work_dir / report["files"]["onnxruntime_optimized"],
                                          work_dir / report["files"]["onnxruntime_int8"], work_dir / REPORT_NAME)}
    onnx_metrics = {f"{variant}/{key}": value for variant, values in report.get("map", {}).items()
                    for key, value in values.items()}
    card = {"architecture": architecture, "class_names": list(class_names), "input_size": list(input_size),
            "metrics": {**(metrics or {}), **onnx_metrics}, "git_revision": git_revision(),
            "trainwright_version": __version__, "latency_ms": report["latency_ms"],
            "map_drop_points": report.get("map_drop_points"), "quantization": quantization}
    return files, card
