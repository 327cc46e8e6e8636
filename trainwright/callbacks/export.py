"""ModelConversionCheckCallback: before the first training step, prove that the model converts to ONNX and that
onnxruntime computes what PyTorch computes; stop with a clear error otherwise."""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from collections.abc import Sequence

import torch

from trainwright.callbacks.base import Phase, PhaseCallback, PhaseContext
from trainwright.models.export.checks import compare_outputs, inference_session, run_onnx, torch_outputs
from trainwright.models.export.contract import require
from trainwright.models.registry.names import check_name

__all__ = ["ModelConversionCheckCallback", "ModelConversionError"]

logger = logging.getLogger("trainwright")

_DEFAULTS = {
    "opset_version": 11, "do_constant_folding": True,
    "dynamic_axes": {"input": {0: "batch_size"}, "output": {0: "batch_size"}},
    "input_names": ["input"], "output_names": ["output"], "rtol": 1e-03, "atol": 1e-05,
}  # fmt: skip


class ModelConversionError(RuntimeError):
    """The model failed the ONNX conversion check (the conversion itself, or ONNX Runtime vs PyTorch)."""


class ModelConversionCheckCallback(PhaseCallback):
    """At training start: convert a copy of the model to ONNX, run it in onnxruntime on a random input and compare
    every output with PyTorch's; raise ModelConversionError before any training step when they differ.

    Args:
        model_name: names the model in messages (letters, digits, '.', '_', '-').
        input_dimensions: the shape of one input, e.g. (C, H, W); the random input is [primary_batch_size, *dims].
        primary_batch_size: batch size of the random input.
        kwargs: opset_version=11, do_constant_folding=True, dynamic_axes={"input": {0: "batch_size"}, "output":
            {0: "batch_size"}}, input_names=["input"], output_names=["output"], rtol=1e-03, atol=1e-05
            (|onnx - torch| <= atol + rtol * |torch| element by element).
    """

    def __init__(self, model_name: str, input_dimensions: Sequence[int], primary_batch_size: int, **kwargs):
        super().__init__(Phase.PRE_TRAINING)
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise TypeError(f"ModelConversionCheckCallback: unknown argument(s) {unknown}; known: {sorted(_DEFAULTS)}")
        self.model_name = check_name("model_name", model_name)
        dims = tuple(input_dimensions)
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            raise ValueError(f"input_dimensions must be positive integers such as (C, H, W), got {input_dimensions!r}")
        self.input_dimensions = dims
        if isinstance(primary_batch_size, bool) or not isinstance(primary_batch_size, int) or primary_batch_size < 1:
            raise ValueError(f"primary_batch_size must be a positive integer, got {primary_batch_size!r}")
        self.primary_batch_size = primary_batch_size
        settings = {**_DEFAULTS, **{k: v for k, v in kwargs.items() if v is not None}}
        self.opset_version = settings["opset_version"]
        self.do_constant_folding = bool(settings["do_constant_folding"])
        self.dynamic_axes = settings["dynamic_axes"]
        self.input_names, self.output_names = list(settings["input_names"]), list(settings["output_names"])
        self.rtol, self.atol = float(settings["rtol"]), float(settings["atol"])
        self.max_abs_diff: float | None = None  # set by a passing check

    def __call__(self, context: PhaseContext) -> None:
        require("onnx")
        net = context.net.module if hasattr(context.net, "module") else context.net
        model = copy.deepcopy(net).cpu().eval()
        if hasattr(model, "prep_model_for_conversion"):
            model.prep_model_for_conversion(input_size=self.input_dimensions[-2:])
        x = torch.randn(self.primary_batch_size, *self.input_dimensions, generator=torch.Generator().manual_seed(0))
        try:
            expected = torch_outputs(model, x)
            with tempfile.TemporaryDirectory(prefix=f"{self.model_name}_conversion_") as tmp:
                path = f"{tmp}/{self.model_name}.onnx"
                self._convert(model, x, path)
                require("onnx").checker.check_model(path)
                got = run_onnx(inference_session(path), x)
            self.max_abs_diff = compare_outputs(got, expected, self.rtol, self.atol)
        except Exception as err:
            raise ModelConversionError(f"ModelConversionCheckCallback: {self.model_name} failed the ONNX conversion "
                                       f"check, so training did not start: {type(err).__name__}: "
                                       f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}") from err
        logger.info("%s converts to ONNX (opset %d) and onnxruntime agrees with PyTorch (max |diff| %.2e)",
                    self.model_name, self.opset_version, self.max_abs_diff)

    def _convert(self, model: torch.nn.Module, x: torch.Tensor, path: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
            torch.onnx.export(model, (x,), path, dynamo=False, opset_version=self.opset_version,
                              do_constant_folding=self.do_constant_folding, input_names=self.input_names,
                              output_names=self.output_names, dynamic_axes=self.dynamic_axes)
