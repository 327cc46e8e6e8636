"""YOLOX flip test-time augmentation (model.augmented_inference = True)."""

import torch
import torch.nn.functional as F

from trainwright.models import get_model
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback

SIZE = 64


def _model(num_classes=2):
    torch.manual_seed(0)
    return get_model("yolox_n", num_classes=num_classes).eval()


def _mirror(decoded, width=SIZE):
    """Decoded predictions [B, N, 5 + C] of an image, expressed in its left-right mirror."""
    return torch.cat([width - decoded[..., :1], decoded[..., 1:]], -1)


def test_output_appends_the_mirrored_view_mapped_back():
    model = _model()
    x = torch.rand(2, 3, SIZE, SIZE) * 255
    with torch.no_grad():
        plain, plain_raw = model(x)
        mirrored, _ = model(x.flip(-1))
        model.augmented_inference = True
        merged, raw = model(x)
    n = plain.shape[1]
    assert merged.shape == (2, 2 * n, plain.shape[2])
    assert torch.equal(merged[:, :n], plain)
    assert torch.allclose(merged[:, n:], _mirror(mirrored), atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(raw, plain_raw))  # raw maps: the original view only


def test_merged_predictions_are_exactly_flip_equivariant():
    model = _model()
    model.augmented_inference = True
    x = torch.rand(1, 3, SIZE, SIZE) * 255
    with torch.no_grad():
        merged, _ = model(x)
        merged_of_mirror, _ = model(x.flip(-1))
    n = merged.shape[1] // 2
    swapped = torch.cat([merged_of_mirror[:, n:], merged_of_mirror[:, :n]], 1)
    assert torch.allclose(_mirror(swapped), merged, atol=1e-4)


class MirrorEquivariantHead(torch.nn.Module):
    """Raw maps from average-pooled pixels: mirroring the image mirrors every map (exactly, on integer images)."""

    def __init__(self, num_classes, strides=(8, 16, 32)):
        super().__init__()
        self.num_classes, self.strides = num_classes, strides

    def forward(self, x):
        maps = []
        for s in self.strides:
            p = F.avg_pool2d(x, s) / 255  # [B, 3, h, w]
            half = torch.full_like(p[:, :1], 0.5)  # centred boxes: cx = (0.5 + gx) * s mirrors to W - cx
            cls = torch.stack([p[:, i % 3] * 6 - 3 for i in range(self.num_classes)], 1)
            out = torch.cat([half, half, p[:, :1] - 0.5, p[:, 1:2] - 0.5, p[:, 2:3] * 6 - 3, cls], 1)
            maps.append(out.permute(0, 2, 3, 1)[:, None].contiguous())
        return maps


def test_symmetric_input_gives_the_same_detections():
    model = _model()
    model._backbone, model._head = torch.nn.Identity(), MirrorEquivariantHead(model.num_classes)
    left = torch.randint(0, 256, (1, 3, SIZE, SIZE // 2)).float()
    x = torch.cat([left, left.flip(-1)], -1)  # a left-right symmetric image
    nms = YoloXPostPredictionCallback(conf=0.05, iou=0.6, max_predictions=None)
    with torch.no_grad():
        plain = nms(model(x))[0]
        model.augmented_inference = True
        merged = nms(model(x))[0]
    assert plain is not None and len(plain) > 3
    assert torch.equal(torch.sort(merged, 0).values, torch.sort(plain, 0).values)


def test_train_mode_ignores_the_flag():
    model = _model()
    model.augmented_inference = True
    x = torch.rand(1, 3, SIZE, SIZE)
    model.train()
    out = model(x)
    assert isinstance(out, list) and len(out) == 3
    assert out[0].shape == (1, 1, SIZE // 8, SIZE // 8, 5 + 2)
