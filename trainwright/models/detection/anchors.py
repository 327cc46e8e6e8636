"""Anchor boxes of anchor-based detectors (YOLOv3/v5 style): sizes per detection layer and the layers' strides."""

import torch
from torch import nn


class Anchors(nn.Module):
    """Holds the anchor sizes and strides of a detector with one anchor set per detection layer.

    ``anchors_list``: one list per layer, ``[w1, h1, w2, h2, ...]`` in input pixels, the same number of
    anchors on every layer. ``strides``: the down-sampling factor of each layer (e.g. ``[8, 16, 32]``).
    Buffers (they follow ``.to(device)`` and are saved in the state_dict):

    * ``stride`` float [L]
    * ``anchors`` float [L, A, 2], (w, h) in grid cells of the layer (pixels / stride)
    * ``anchor_grid`` float [L, 1, A, 1, 1, 2], (w, h) in pixels, shaped to broadcast over
      [B, A, H, W, 2] predictions
    """

    def __init__(self, anchors_list: list[list[float]], strides: list[int]):
        super().__init__()
        sizes = _validated_sizes(anchors_list, strides)
        stride = torch.as_tensor([float(s) for s in strides], dtype=torch.float32)
        self.register_buffer("_stride", stride)
        self.register_buffer("_anchors", sizes / stride.view(-1, 1, 1))
        self.register_buffer("_anchor_grid", sizes.clone().view(sizes.shape[0], 1, -1, 1, 1, 2))

    @property
    def stride(self) -> torch.Tensor:
        return self._stride

    @property
    def anchors(self) -> torch.Tensor:
        return self._anchors

    @property
    def anchor_grid(self) -> torch.Tensor:
        return self._anchor_grid

    @property
    def detection_layers_num(self) -> int:
        """Number of detection layers L."""
        return self._anchors.shape[0]

    @property
    def num_anchors(self) -> int:
        """Number of anchors A on each detection layer."""
        return self._anchors.shape[1]

    def forward(self) -> torch.Tensor:
        """The anchors in grid units, [L, A, 2]."""
        return self._anchors


def _validated_sizes(anchors_list, strides) -> torch.Tensor:
    """anchors_list as a float [L, A, 2] tensor, after checking it against strides."""
    if not isinstance(anchors_list, (list, tuple)) or not anchors_list:
        raise ValueError(f"anchors_list must be a non-empty list of per-layer lists, got {anchors_list!r}")
    if not isinstance(strides, (list, tuple)) or len(strides) != len(anchors_list):
        raise ValueError(f"strides must be a list with one stride per detection layer "
                         f"({len(anchors_list)} layers), got {strides!r}")
    if any(not isinstance(s, (int, float)) or isinstance(s, bool) or s <= 0 for s in strides):
        raise ValueError(f"strides must be positive numbers, got {strides!r}")
    lengths = [len(layer) for layer in anchors_list]
    if lengths[0] == 0 or lengths[0] % 2 or len(set(lengths)) != 1:
        raise ValueError(f"each layer of anchors_list must hold the same even, non-zero count of numbers "
                         f"(w, h pairs); got lengths {lengths}")
    sizes = torch.as_tensor([[float(v) for v in layer] for layer in anchors_list], dtype=torch.float32)
    if (sizes <= 0).any():
        raise ValueError(f"anchor widths and heights must be positive, got {anchors_list!r}")
    return sizes.view(len(anchors_list), -1, 2)
