"""The decoupled YOLOX head: per level a stem, a classification branch and a box/objectness branch."""

import math

import torch
from torch import nn

from trainwright.models.detection.blocks import ConvBNSiLU, conv3x3

PRIOR_PROB = 0.01


def prior_bias(prior_prob: float = PRIOR_PROB) -> float:
    """Logit bias making sigmoid(bias) == prior_prob (-4.59512 for 0.01), the start value of class/obj logits."""
    return -math.log((1.0 - prior_prob) / prior_prob)


class YoloXDecoupledHead(nn.Module):
    """Feature maps [B, Ci, H/s, W/s] per level -> raw maps [B, 1, H/s, W/s, 5 + C] per level.

    Channels of a raw map: tx, ty, tw, th, objectness logit, C class logits. The attribute order
    (cls_convs, reg_convs, cls_preds, reg_preds, obj_preds, stems) fixes the state_dict key order.
    """

    def __init__(self, num_classes: int, in_channels: tuple[int, ...], width: int, depthwise: bool = False):
        super().__init__()
        self.num_classes = num_classes
        levels = range(len(in_channels))
        self.cls_convs = nn.ModuleList(self._branch(width, depthwise) for _ in levels)
        self.reg_convs = nn.ModuleList(self._branch(width, depthwise) for _ in levels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in levels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(width, 4, 1) for _ in levels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in levels)
        self.stems = nn.ModuleList(ConvBNSiLU(c, width, 1) for c in in_channels)
        self.reset_prediction_biases()

    @staticmethod
    def _branch(width: int, depthwise: bool) -> nn.Sequential:
        return nn.Sequential(conv3x3(width, width, 1, depthwise), conv3x3(width, width, 1, depthwise))

    def reset_prediction_biases(self, prior_prob: float = PRIOR_PROB) -> None:
        """Set class and objectness biases so every initial score equals ``prior_prob``."""
        with torch.no_grad():
            for conv in (*self.cls_preds, *self.obj_preds):
                conv.bias.fill_(prior_bias(prior_prob))

    def replace_classifier(self, num_classes: int) -> None:
        """Swap the class prediction convs for fresh ones predicting ``num_classes`` classes."""
        reference = self.cls_preds[0].weight
        self.cls_preds = nn.ModuleList(
            nn.Conv2d(conv.in_channels, num_classes, 1).to(device=reference.device, dtype=reference.dtype)
            for conv in self.cls_preds
        )
        with torch.no_grad():
            for conv in self.cls_preds:
                conv.bias.fill_(prior_bias())
        self.num_classes = num_classes

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for i, x in enumerate(features):
            stem = self.stems[i](x)
            cls_logits = self.cls_preds[i](self.cls_convs[i](stem))
            reg_feat = self.reg_convs[i](stem)
            out = torch.cat([self.reg_preds[i](reg_feat), self.obj_preds[i](reg_feat), cls_logits], dim=1)
            b, c, h, w = out.shape
            outputs.append(out.view(b, 1, c, h, w).permute(0, 1, 3, 4, 2).contiguous())
        return outputs
