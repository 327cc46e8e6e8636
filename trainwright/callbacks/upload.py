"""DeciLabUploadCallback: after training, store the best model in a model registry with its ONNX export, an
optimised and an INT8 version, and a latency / accuracy-drop report (the vendor platform of the reference API
no longer exists; a local folder registry, or MLflow's, takes its place)."""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping

from trainwright.callbacks.base import Phase, PhaseCallback, PhaseContext
from trainwright.checkpoints import load_checkpoint_to_model, read_ckpt_state_dict
from trainwright.models.export.optimize import QUANTIZATION_MODES
from trainwright.models.registry import ModelVersion, check_name, open_registry
from trainwright.models.registry.package import REPORT_NAME, package_model

__all__ = ["DeciLabUploadCallback"]

logger = logging.getLogger("trainwright")

_OPTIONS = {"registry": None, "version": None, "latency_runs": 10, "max_valid_batches": None,
            "calibration_batches": 4, "opset": None}


def _field(obj, key: str, default=None):
    """obj[key] for a mapping, obj.key for an object, else `default`."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


class DeciLabUploadCallback(PhaseCallback):
    """At the end of training, push the checkpoint `ckpt_name` of the run to a model registry, with its ONNX
    export (dynamic batch), an onnxruntime-optimised copy, an INT8 copy and ``optimization.json`` (latency of
    each, validation mAP of float32 and INT8, the drop in points).

    Args:
        model_meta_data: mapping or object with ``name`` (the registry model name) and optionally
            ``primary_batch_size`` (latency batch, default 1) and ``input_dimensions`` ((C, H, W) or (H, W);
            default: the checkpoint's input size).
        optimization_request_form: mapping or object with optionally ``quantization_level`` ("INT8", the only
            level made here), ``quantization_method`` ("static", default: activation ranges calibrated on a few
            training batches, convolutions run in INT8; or "dynamic": no data needed, but on a CPU a CNN gets no
            faster) and ``target_batch_size`` (overrides primary_batch_size).
        ckpt_name: checkpoint file in the experiment directory.
        kwargs: registry (a folder, "mlflow:<tracking URI>" or a registry object; default $TRAINWRIGHT_REGISTRY
            or ./registry), version (default: the next number), latency_runs=10, max_valid_batches=None,
            calibration_batches=4, opset=None (export's default).

    A failure is logged and never ends the run; nothing is uploaded when training ended with an error.
    """

    def __init__(self, model_meta_data, optimization_request_form, ckpt_name: str = "ckpt_best.pth", **kwargs):
        super().__init__(Phase.POST_TRAINING)
        unknown = sorted(set(kwargs) - set(_OPTIONS))
        if unknown:
            raise TypeError(f"DeciLabUploadCallback: unknown argument(s) {unknown}; known: {sorted(_OPTIONS)}")
        self.model_meta_data = model_meta_data
        self.optimization_request_form = optimization_request_form
        self.ckpt_name = ckpt_name
        self.model_name = check_name("model name", _field(model_meta_data, "name"))
        options = {**_OPTIONS, **kwargs}
        self.version = None if options["version"] is None else check_name("version", str(options["version"]))
        self.registry = options["registry"] if hasattr(options["registry"], "push") else open_registry(
            options["registry"])
        self.latency_runs, self.max_valid_batches = int(options["latency_runs"]), options["max_valid_batches"]
        self.calibration_batches, self.opset = int(options["calibration_batches"]), options["opset"]
        level = str(_field(optimization_request_form, "quantization_level", "INT8")).upper().split(".")[-1]
        if level != "INT8":
            raise ValueError(f"quantization_level {level!r} is not made here; use INT8")
        self.quantization = str(_field(optimization_request_form, "quantization_method", "static"))
        if self.quantization not in QUANTIZATION_MODES:
            raise ValueError(f"quantization_method must be one of {QUANTIZATION_MODES}, got {self.quantization!r}")
        self.batch_size = int(_field(optimization_request_form, "target_batch_size", None)
                              or _field(model_meta_data, "primary_batch_size", 1))
        self.uploaded: ModelVersion | None = None
        self._context: PhaseContext | None = None

    def __call__(self, context: PhaseContext) -> None:
        """Upload the trained model and make its optimised versions; errors are logged, not raised."""
        if sys.exc_info()[0] is not None and not issubclass(sys.exc_info()[0], KeyboardInterrupt):
            logger.warning("DeciLabUploadCallback: training ended with an error; nothing was uploaded")
            return
        try:
            self._context = context
            checkpoint = os.path.join(context.ckpt_dir, self.ckpt_name)
            if not os.path.isfile(checkpoint):
                raise FileNotFoundError(f"checkpoint {checkpoint} not found")
            net = context.net.module if hasattr(context.net, "module") else context.net
            model = copy.deepcopy(net).cpu()
            ckpt = read_ckpt_state_dict(checkpoint)
            load_checkpoint_to_model(model, checkpoint, strict="on", load_ema_as_net="ema_net" in ckpt)
            self.upload_model(model)
            if self.get_optimization_status(f"{self.model_name}/{self.uploaded.version}"):
                logger.info("DeciLabUploadCallback: %s version %s stored in %r with its optimised versions",
                            self.model_name, self.uploaded.version, self.registry)
        except Exception as err:  # an optional output never ends the run
            logger.error("DeciLabUploadCallback: could not upload %s: %s: %s", self.model_name, type(err).__name__, err)
        finally:
            self._context = None

    def upload_model(self, model) -> ModelVersion:
        """Export, optimise and measure `model` (its checkpoint from the run), then push it to the registry."""
        context = self._context
        checkpoint = os.path.join(context.ckpt_dir, self.ckpt_name) if context is not None else None
        if checkpoint is None:
            raise ValueError("upload_model runs inside the callback (it needs the run's checkpoint and loaders)")
        params = dict(read_ckpt_state_dict(checkpoint).get("processing_params") or {})
        dims = _field(self.model_meta_data, "input_dimensions") or params.get("input_size")
        if not dims:
            raise ValueError("no input size: set model_meta_data.input_dimensions or train with processing params")
        names = list(params.get("class_names") or [str(i) for i in range(getattr(model, "num_classes", 0))])
        calibration = None
        if self.quantization == "static":
            calibration = _first_images(context.train_loader, self.calibration_batches)
        ckpt = read_ckpt_state_dict(checkpoint)
        metrics = {"best_metric": ckpt.get("best_metric")} if ckpt.get("best_metric") is not None else {}
        with tempfile.TemporaryDirectory(prefix="trainwright-upload-") as work:
            files, card = package_model(
                model, checkpoint, work, architecture=str(params.get("architecture", type(model).__name__)),
                class_names=names, input_size=tuple(int(v) for v in list(dims)[-2:]), batch_size=self.batch_size,
                quantization=self.quantization, calibration=calibration, loader=context.valid_loader,
                postprocess=params.get("postprocess"), metrics=metrics, opset=self.opset,
                latency_runs=self.latency_runs, max_batches=self.max_valid_batches)
            card["training"] = {"experiment_name": context.experiment_name, "checkpoint": self.ckpt_name,
                                "metric_to_watch": context.metric_to_watch, "epoch": ckpt.get("epoch")}
            self.uploaded = self.registry.push(self.model_name, files, card, version=self.version)
        return self.uploaded

    def get_optimization_status(self, optimized_model_name: str) -> bool:
        """Whether "<name>/<version>" (or "<name>" for its latest version) is stored with its INT8 file and report."""
        name, _, version = optimized_model_name.partition("/")
        stored = self.registry.show(name, version or None)
        files = stored.card.get("files", {})
        ready = REPORT_NAME in files and "model.int8.onnx" in files
        if ready:
            report = {k: stored.card.get(k) for k in ("latency_ms", "map_drop_points")}
            logger.info("%s version %s: %s", name, stored.version, json.dumps(report))
        return ready


def _first_images(loader, count: int) -> list:
    """The image batches of the first `count` batches of a loader (for static quantisation's calibration)."""
    if loader is None:
        raise ValueError("static quantisation needs the training loader for calibration images")
    batches = []
    for batch in loader:
        batches.append(batch[0].detach().cpu().float())
        if len(batches) >= count:
            break
    return batches

