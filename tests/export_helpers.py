"""Detectors with varied outputs for the export tests (an untrained YOLOX scores every box alike).

A fresh YOLOX's features fade to nothing through its layers, so every box gets the prior score and NMS only
breaks ties. `lively_yolox` recalibrates the BatchNorm statistics on random images (unit-variance features)
and scales the prediction layers so that scores spread over (0, 1) and boxes stay finite: a stand-in for a
trained model that keeps the tests fast and deterministic.
"""

import torch

from trainwright.data.shapes import SHAPE_CLASSES
from trainwright.models import get_model


def lively_yolox(architecture: str = "yolox_n", input_size=(96, 96), seed: int = 0, num_classes: int = 5):
    torch.manual_seed(seed)
    model = get_model(architecture, num_classes=num_classes)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average over the calibration batches
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, *input_size) * 255)
    model.eval()
    head = model._head.detection_head
    with torch.no_grad():
        for conv in (*head.cls_preds, *head.obj_preds):
            conv.weight.mul_(0.04)
            conv.bias.zero_()
        for conv in head.reg_preds:
            conv.weight.mul_(0.002)
    return model


def images(count: int, input_size=(96, 96), seed: int = 1) -> torch.Tensor:
    return torch.rand(count, 3, *input_size, generator=torch.Generator().manual_seed(seed)) * 255


def write_checkpoint(path, model, architecture: str = "yolox_n", input_size=(96, 96), class_names=SHAPE_CLASSES):
    """A checkpoint as `trainwright train` writes it (net, processing_params), for the command-line tests."""
    torch.save({"net": model.state_dict(), "epoch": 1, "processing_params": {
        "architecture": architecture, "arch_params": {}, "class_names": list(class_names),
        "input_size": list(input_size), "category_ids": list(range(1, len(class_names) + 1)),
        "postprocess": {"conf": 0.01, "iou": 0.6, "max_predictions": 100}}}, path)
    return path
