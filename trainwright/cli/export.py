"""`trainwright export CHECKPOINT [--output FILE] [--nms] ...`: a trained checkpoint to an ONNX file."""

from __future__ import annotations

import os
from pathlib import Path

from trainwright.checkpoints import read_ckpt_state_dict
from trainwright.cli.inference import load_checkpoint_model
from trainwright.models import list_models
from trainwright.models.export import NMS_OUTPUTS, RAW_OUTPUTS, export_onnx
from trainwright.models.export.onnx_export import check_output_path

__all__ = ["run_export", "default_output_path", "check_architecture"]


def default_output_path(checkpoint: str) -> Path:
    """The checkpoint's path with the suffix .onnx (ckpt_best.pth -> ckpt_best.onnx)."""
    return Path(checkpoint).with_suffix(".onnx")


def check_architecture(checkpoint: str) -> dict:
    """The checkpoint's processing params; a ValueError naming the architecture when this version cannot build it."""
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    ckpt = read_ckpt_state_dict(checkpoint)
    params = ckpt.get("processing_params") if isinstance(ckpt, dict) else None
    if not params or "architecture" not in params:
        raise ValueError(f"{checkpoint} has no processing_params with the architecture; only checkpoints written by "
                         f"`trainwright train` can be exported")
    if str(params["architecture"]).lower() not in list_models():
        raise ValueError(f"{checkpoint}: unknown architecture {params['architecture']!r}; this version builds "
                         f"{', '.join(list_models())}")
    return params


def run_export(checkpoint: str, output: str | None = None, input_size: list[int] | None = None, batch: int = 1,
               dynamic_batch: bool = False, nms: bool = False, conf: float = 0.25, iou: float = 0.6,
               max_predictions: int = 100, opset: int | None = None, half: bool = False, simplify: bool = False,
               overwrite: bool = False) -> int:
    """Export `checkpoint` (its EMA weights when saved) to ONNX and print what the file takes and returns."""
    params = check_architecture(checkpoint)
    target = check_output_path(output if output is not None else default_output_path(checkpoint), overwrite)
    cm = load_checkpoint_model(checkpoint, device="cpu")
    size = tuple(input_size) if input_size is not None else cm.input_size
    metadata = {"architecture": str(params["architecture"]), "category_ids": cm.category_ids,
                "postprocess": cm.postprocess}
    path = export_onnx(cm.model, target, size, batch_size=batch, dynamic_batch=dynamic_batch, nms=nms, conf=conf,
                       iou=iou, max_predictions=max_predictions, opset=opset, half=half, simplify=simplify,
                       class_names=cm.class_names, metadata=metadata, overwrite=overwrite)
    b = "B" if dynamic_batch else str(batch)
    h, w = size
    dtype = "float16" if half else "float32"
    if nms:
        outputs = (f"{NMS_OUTPUTS[0]} [{b}, {max_predictions}, 6] (x1, y1, x2, y2, score, class), "
                   f"{NMS_OUTPUTS[1]} [{b}] int64 (NMS inside: conf {conf}, iou {iou})")
    else:
        outputs = (f"{RAW_OUTPUTS[0]} [{b}, N, 4] (x1, y1, x2, y2), {RAW_OUTPUTS[1]} [{b}, N, "
                   f"{len(cm.class_names)}] (class confidences)")
    size_mb = path.stat().st_size / 2**20
    print(f"images [{b}, 3, {h}, {w}] {dtype} -> {outputs}")
    print(f"checked in onnxruntime against the PyTorch model; {size_mb:.1f} MiB written to {path}")
    return 0
