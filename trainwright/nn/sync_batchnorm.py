"""BatchNorm whose training statistics cover the batches of every process, on any device (gloo or nccl).

torch's `nn.SyncBatchNorm` runs on GPUs only; `ProcessGroupBatchNorm` computes the same thing with plain
all-reduces, so `sync_bn` also works for CPU training on gloo. Outside training mode, or without a process
group of more than one process, it is an ordinary BatchNorm (same state-dict keys).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["ProcessGroupBatchNorm", "convert_sync_batchnorm"]


def _reduce_dims(x: torch.Tensor) -> list[int]:
    return [0, *range(2, x.dim())]


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[C] -> [1, C, 1, ...] broadcastable against `x` [N, C, *]."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


class _SyncBatchNormFunction(torch.autograd.Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias with mean and var over the batches of all processes.

    Forward all-reduces (count, sum, sum of squares) per channel in float64; backward all-reduces the two sums
    the input gradient needs. The weight and bias gradients stay local: DistributedDataParallel averages them.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float, group):
        dims = _reduce_dims(x)
        x64 = x.double()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        stats = torch.cat([count, x64.sum(dims), (x64 * x64).sum(dims)])
        dist.all_reduce(stats, group=group)
        channels = x.shape[1]
        total, sums, squares = stats[0], stats[1 : 1 + channels], stats[1 + channels :]
        mean = sums / total
        var = (squares / total - mean * mean).clamp_min(0.0)
        invstd = torch.rsqrt(var + eps)
        xhat = (x64 - _per_channel(mean, x)) * _per_channel(invstd, x)
        y = xhat
        if weight is not None:
            y = y * _per_channel(weight.double(), x) + _per_channel(bias.double(), x)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.total, ctx.group = total, group
        ctx.mark_non_differentiable(mean, var, total)
        return y.to(x.dtype), mean.to(x.dtype), var.to(x.dtype), total

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var, _grad_total):
        xhat, invstd, weight = ctx.saved_tensors
        dims = _reduce_dims(grad_y)
        dy = grad_y.double()
        local = torch.cat([dy.sum(dims), (dy * xhat).sum(dims)])
        grad_weight = grad_bias = None
        if weight is not None and ctx.needs_input_grad[1]:
            channels = dy.shape[1]
            grad_weight = local[channels:].clone().to(weight.dtype)
            grad_bias = local[:channels].clone().to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            reduced = local.clone()
            dist.all_reduce(reduced, group=ctx.group)
            sum_dy, sum_dy_xhat = reduced.chunk(2)
            scale = invstd if weight is None else invstd * weight.double()
            grad_x = (dy - _per_channel(sum_dy / ctx.total, dy) - xhat * _per_channel(sum_dy_xhat / ctx.total, dy))
            grad_x = (grad_x * _per_channel(scale, dy)).to(grad_y.dtype)
        return grad_x, grad_weight, grad_bias, None, None


class ProcessGroupBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the batches of every process of `process_group` (default: all) in training mode.

    Args:
        num_features: C of an input [N, C, *] (any number of trailing dimensions).
    The running statistics are updated from the global mean and unbiased variance, as torch's SyncBatchNorm does.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None):  # fmt: skip
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input with at least 2 dimensions [N, C, *], got shape {tuple(input.shape)}")

    def _syncs(self) -> bool:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size(self.process_group) > 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not self._syncs():
            return super().forward(input)
        out, mean, var, total = _SyncBatchNormFunction.apply(input, self.weight, self.bias, self.eps,
                                                            self.process_group)  # fmt: skip
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), float(total))
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, total: float) -> None:
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (total / max(total - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """`module` with every BatchNorm layer replaced by a ProcessGroupBatchNorm holding the same weights and
    statistics (children are replaced in place; the returned module is `module` unless it is a BatchNorm itself)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, ProcessGroupBatchNorm):
        converted = ProcessGroupBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                          module.track_running_stats, process_group)  # fmt: skip
        with torch.no_grad():
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            if module.track_running_stats:
                converted.running_mean = module.running_mean
                converted.running_var = module.running_var
                converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child, process_group)
        if new is not child:
            module.add_module(name, new)
    return module
