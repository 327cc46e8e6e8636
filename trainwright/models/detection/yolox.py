"""YOLOX: CSPDarknet backbone, PAFPN neck, decoupled head, anchor-free decoding at strides 8, 16, 32."""

from copy import deepcopy
from typing import Any

import torch
from torch import nn

from trainwright.models.detection.blocks import Concat, ConvBNSiLU, CSPLayer, conv3x3
from trainwright.models.detection.csp_darknet import CSPDarknet, scaled_depth, scaled_width
from trainwright.models.detection.yolox_head import YoloXDecoupledHead
from trainwright.ops.boxes import cxcywh2xyxy

STRIDES = (8, 16, 32)
_GRID_CACHE_SIZE = 16


class YoloXPAFPN(nn.Module):
    """PAFPN neck plus detection head: backbone (C3, C4, C5) -> raw maps [B, 1, H/s, W/s, 5 + C], s = 8, 16, 32.

    The 15 layers sit in ``_modules_list`` (parameter-free upsample/concat slots included) so that the
    state_dict keys match the reference layout; index 14 is the decoupled head.
    """

    def __init__(self, num_classes: int, depth_mult: float, width_mult: float, depthwise: bool = False):
        super().__init__()
        c256, c512, c1024 = (scaled_width(c, width_mult) for c in (256, 512, 1024))
        n = scaled_depth(3, depth_mult)
        self._modules_list = nn.ModuleList([
            ConvBNSiLU(c1024, c512, 1),                          # 0: lateral of C5
            nn.Upsample(scale_factor=2, mode="nearest"),         # 1
            Concat(),                                            # 2: [up, C4]
            CSPLayer(2 * c512, c512, n, False, depthwise),       # 3
            ConvBNSiLU(c512, c256, 1),                           # 4: lateral of level 4
            nn.Upsample(scale_factor=2, mode="nearest"),         # 5
            Concat(),                                            # 6: [up, C3]
            CSPLayer(2 * c256, c256, n, False, depthwise),       # 7: P3
            conv3x3(c256, c256, 2, depthwise),                   # 8
            Concat(),                                            # 9: [down, lateral 4]
            CSPLayer(2 * c256, c512, n, False, depthwise),       # 10: P4
            conv3x3(c512, c512, 2, depthwise),                   # 11
            Concat(),                                            # 12: [down, lateral 5]
            CSPLayer(2 * c512, c1024, n, False, depthwise),      # 13: P5
            YoloXDecoupledHead(num_classes, (c256, c512, c1024), c256, depthwise),  # 14
        ])

    @property
    def detection_head(self) -> YoloXDecoupledHead:
        return self._modules_list[14]

    def forward(self, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = features
        layers = self._modules_list
        lateral5 = layers[0](c5)
        x = layers[3](layers[2]([layers[1](lateral5), c4]))
        lateral4 = layers[4](x)
        p3 = layers[7](layers[6]([layers[5](lateral4), c3]))
        p4 = layers[10](layers[9]([layers[8](p3), lateral4]))
        p5 = layers[13](layers[12]([layers[11](p4), lateral5]))
        return layers[14]([p3, p4, p5])


class YoloX(nn.Module):
    """YOLOX detector, images [B, Cin, H, W] with H and W divisible by 32.

    Train mode returns the raw maps ``[B, 1, H/s, W/s, 5 + C]`` for s = 8, 16, 32 (channels tx, ty, tw, th,
    objectness logit, class logits). Eval mode returns ``(decoded [B, N, 5 + C], raw maps)`` where decoded
    holds cx, cy, w, h in input pixels, sigmoid(objectness) and sigmoid(class logits) (not multiplied by
    objectness), levels concatenated in stride order and cells row-major, N = sum of (H/s)(W/s).

    Setting ``model.augmented_inference = True`` turns on flip test-time augmentation in eval mode: the
    horizontally mirrored images are run too and their decoded predictions, mapped back (cx -> W - cx), are
    appended, so decoded is [B, 2N, 5 + C] (NMS then merges both views); the raw maps stay those of the
    original images, so validation losses are unchanged. Train mode ignores the flag.
    """

    def __init__(self, num_classes: int, depth_mult: float, width_mult: float, depthwise: bool = False,
                 in_channels: int = 3):
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("in_channels", in_channels)
        for name, value in (("depth_mult", depth_mult), ("width_mult", width_mult)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.strides = STRIDES
        self.in_channels = in_channels
        self._backbone = CSPDarknet(depth_mult, width_mult, depthwise, in_channels)
        self._head = YoloXPAFPN(num_classes, depth_mult, width_mult, depthwise)
        self._processing_params: dict[str, Any] = {}
        self._grid_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.augmented_inference = False

    @property
    def num_classes(self) -> int:
        return self._head.detection_head.num_classes

    def replace_head(self, new_num_classes: int) -> None:
        """Re-initialise the class predictions for ``new_num_classes`` classes; the rest keeps its weights."""
        _check_positive_int("new_num_classes", new_num_classes)
        self._head.detection_head.replace_classifier(new_num_classes)

    def set_dataset_processing_params(self, **params: Any) -> None:
        """Store dataset facts used at inference (e.g. ``class_names``, ``input_size``); None values are ignored."""
        self._processing_params.update({k: deepcopy(v) for k, v in params.items() if v is not None})

    def get_processing_params(self) -> dict[str, Any]:
        """A copy of the stored dataset processing parameters (empty dict when none were set)."""
        return deepcopy(self._processing_params)

    def forward(self, x: torch.Tensor):
        _check_input(x, self.in_channels, self.strides[-1])
        raw = self._head(self._backbone(x))
        if self.training:
            return raw
        decoded = self.decode(raw)
        if self.augmented_inference:
            decoded = torch.cat([decoded, self._mirrored_view_predictions(x)], dim=1)
        return decoded, raw

    def _mirrored_view_predictions(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded predictions [B, N, 5 + C] of the left-right mirrored images, in the original image's frame."""
        mirrored = self.decode(self._head(self._backbone(x.flip(-1))))
        return torch.cat([x.shape[-1] - mirrored[..., :1], mirrored[..., 1:]], dim=-1)

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """Raw maps [B, 1, h_i, w_i, 5 + C] per level -> decoded [B, N, 5 + C] (cx, cy, w, h px, scores)."""
        batch, channels = raw[0].shape[0], raw[0].shape[-1]
        flat = torch.cat([r.reshape(batch, -1, channels) for r in raw], dim=1)
        grid, stride = self._grid(tuple(r.shape[2:4] for r in raw), flat.device, flat.dtype)
        xy = (flat[..., :2] + grid) * stride
        wh = torch.exp(flat[..., 2:4]) * stride
        return torch.cat([xy, wh, flat[..., 4:].sigmoid()], dim=-1)

    @staticmethod
    def boxes_and_scores(output) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval output -> boxes [B, N, 4] (x1, y1, x2, y2 input pixels) and scores [B, N, C] (objectness x class).

        The detector-independent form that ONNX export writes (see trainwright.export).
        """
        decoded = output[0] if isinstance(output, (tuple, list)) else output
        return cxcywh2xyxy(decoded[..., :4]), decoded[..., 5:] * decoded[..., 4:5]

    def _grid(self, sizes: tuple, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell offsets (gx, gy) [N, 2] and per-cell strides [N, 1] for levels of the given (h, w), cached."""
        key = (sizes, device, dtype)
        if key not in self._grid_cache:
            if len(self._grid_cache) >= _GRID_CACHE_SIZE:
                self._grid_cache.clear()
            self._grid_cache[key] = make_grid(sizes, self.strides, device, dtype)
        return self._grid_cache[key]


def make_grid(sizes, strides, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell offsets (gx, gy) [N, 2] and strides [N, 1] for levels of sizes (h_i, w_i), row-major per level."""
    grids, level_strides = [], []
    for (h, w), s in zip(sizes, strides):
        # arange in float32, then cast: the ONNX exporter cannot trace a float16 arange.
        gy, gx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32).to(dtype),
                                torch.arange(w, device=device, dtype=torch.float32).to(dtype), indexing="ij")
        grids.append(torch.stack([gx, gy], dim=-1).reshape(-1, 2))
        level_strides.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(grids), torch.cat(level_strides)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_input(x: torch.Tensor, in_channels: int, max_stride: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != in_channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"YOLOX expects images of shape [B, {in_channels}, H, W], got {shape}")
    h, w = x.shape[-2:]
    if h % max_stride or w % max_stride:
        raise ValueError(f"YOLOX input size must be divisible by {max_stride}, got H x W = {h} x {w}; "
                         f"resize or pad the images (e.g. to {-(-h // max_stride) * max_stride} x "
                         f"{-(-w // max_stride) * max_stride})")
