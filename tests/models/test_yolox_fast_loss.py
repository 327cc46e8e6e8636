"""YoloXFastDetectionLoss: the reference's per-box SimOTA variant, its options, and its signature."""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from trainwright.models.detection.simota import simota_assign
from trainwright.models.detection.yolox_loss import YoloXDetectionLoss
from trainwright.utils import YoloXFastDetectionLoss

SIZE, STRIDES, NUM_CLASSES = 64, (8, 16, 32), 3


def anchors():
    """Cell centres [A, 2] and strides [A] of the three levels, row-major per level."""
    centers, strides = [], []
    for s in STRIDES:
        n = SIZE // s
        gy, gx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        centers.append((torch.stack([gx, gy], -1).reshape(-1, 2).float() + 0.5) * s)
        strides.append(torch.full((n * n,), float(s)))
    return torch.cat(centers), torch.cat(strides)


def per_box_reference(pred_boxes, scores, centers, strides, gt_boxes, gt_classes, k_scale, radius=2.5):
    """The fast variant's assignment written box by box: {(image, anchor): (box, iou)}."""
    picks = {}
    for b in range(gt_boxes.shape[0]):
        for g in range(gt_boxes.shape[1]):
            cx, cy, w, h = gt_boxes[b, g].tolist()
            in_box = ((centers[:, 0] - (cx - w / 2)) > 0) & (((cx + w / 2) - centers[:, 0]) > 0) \
                & ((centers[:, 1] - (cy - h / 2)) > 0) & (((cy + h / 2) - centers[:, 1]) > 0)
            in_center = ((centers - torch.tensor([cx, cy])).abs() < (radius * strides)[:, None]).all(1)
            own = (in_box | in_center).nonzero().flatten().tolist()
            if not own:
                continue
            ious = torch.stack([_iou(gt_boxes[b, g], pred_boxes[b, a]) for a in own])
            k = max(1, int(float(ious.topk(min(10, len(own))).values.sum()) * k_scale))
            one_hot = F.one_hot(gt_classes[b, g], NUM_CLASSES).float()
            iou_of = dict(zip(own, ious.tolist()))
            cost = {}
            for a, iou in iou_of.items():
                cls_cost = F.binary_cross_entropy(scores[b, a], one_hot, reduction="sum").item()
                cost[a] = cls_cost + 3 * -math.log(iou + 1e-8) + 1e5 * (not (in_box[a] and in_center[a]))
            for a in sorted(own, key=cost.get)[:k]:  # k cheapest of its own; a shared anchor: cheapest picker
                if (b, a) not in picks or cost[a] < picks[(b, a)][2]:
                    picks[(b, a)] = (g, iou_of[a], cost[a])
    return {key: value[:2] for key, value in picks.items()}


def _iou(box1, box2):
    a1, a2 = box1[:2] - box1[2:] / 2, box1[:2] + box1[2:] / 2
    b1, b2 = box2[:2] - box2[2:] / 2, box2[:2] + box2[2:] / 2
    wh = (torch.minimum(a2, b2) - torch.maximum(a1, b1)).clamp(min=0)
    inter = wh[0] * wh[1]
    return inter / (box1[2] * box1[3] + box2[2] * box2[3] - inter + 1e-9)


def random_problem(seed, batch=2, boxes=4):
    g = torch.Generator().manual_seed(seed)
    centers, strides = anchors()
    num_anchors = len(centers)
    pred = torch.cat([centers + torch.randn(batch, num_anchors, 2, generator=g) * 4,
                      torch.rand(batch, num_anchors, 2, generator=g) * 30 + 6], -1)
    scores = (torch.rand(batch, num_anchors, NUM_CLASSES, generator=g) * 0.9 + 0.05)
    gt = torch.cat([torch.rand(batch, boxes, 2, generator=g) * 40 + 12, torch.rand(batch, boxes, 2, generator=g) * 30 + 4], -1)
    classes = torch.randint(0, NUM_CLASSES, (batch, boxes), generator=g)
    return pred, scores, centers, strides, gt, classes


@pytest.mark.parametrize("seed", range(4))
def test_per_box_assignment_matches_the_box_by_box_definition(seed):
    pred, scores, centers, strides, gt, classes = random_problem(seed)
    valid = torch.ones(classes.shape, dtype=torch.bool)
    got = simota_assign(pred, scores, centers, strides, gt, classes, valid, 2.5,
                        per_box_candidates=True, dynamic_k_scale=1.1)
    expected = per_box_reference(pred, scores, centers, strides, gt, classes, k_scale=1.1)
    fg = {(b, a) for b, a in got.fg_mask.nonzero().tolist()}
    assert fg == set(expected)
    for (b, a), (box, iou) in expected.items():
        assert int(got.matched_gt[b, a]) == box
        assert float(got.matched_iou[b, a]) == pytest.approx(iou, abs=1e-5)


def test_differs_from_the_original_assignment_when_boxes_share_anchors():
    differs = False
    for seed in range(4):
        pred, scores, centers, strides, gt, classes = random_problem(seed)
        valid = torch.ones(classes.shape, dtype=torch.bool)
        fast = simota_assign(pred, scores, centers, strides, gt, classes, valid, per_box_candidates=True,
                             dynamic_k_scale=1.1)
        original = simota_assign(pred, scores, centers, strides, gt, classes, valid)
        differs |= not torch.equal(fast.fg_mask, original.fg_mask)
    assert differs


def maps(seed, batch=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 1, SIZE // s, SIZE // s, 5 + NUM_CLASSES, generator=g) * 0.5 for s in STRIDES]


def test_one_box_per_image_without_bias_equals_the_original_loss():
    targets = torch.tensor([[0, 1, 30.0, 28.0, 20.0, 14.0], [1, 2, 40.0, 20.0, 10.0, 30.0]])
    preds = maps(0)
    original = YoloXDetectionLoss(STRIDES, NUM_CLASSES, use_l1=True)(preds, targets)
    fast = YoloXFastDetectionLoss(STRIDES, NUM_CLASSES, use_l1=True, dynamic_ks_bias=1.0)(preds, targets)
    assert torch.equal(fast[0], original[0]) and torch.equal(fast[1], original[1])


def test_objectness_fix_divides_by_all_anchors_and_gradients_flow():
    targets = torch.tensor([[0, 0, 30.0, 28.0, 20.0, 14.0], [0, 1, 20.0, 40.0, 16.0, 16.0]])
    preds = [m.requires_grad_(True) for m in maps(1)]
    loss = YoloXFastDetectionLoss(STRIDES, NUM_CLASSES)
    assert loss.component_names == ["iou", "obj", "cls", "l1", "num_fg", "Loss"]
    plain = loss(preds, targets)[1]
    fixed_total, fixed = YoloXFastDetectionLoss(STRIDES, NUM_CLASSES, obj_loss_fix=True)(preds, targets)
    num_fg = plain[4].item() * 2  # foregrounds per box times boxes
    num_anchors = 2 * sum((SIZE // s) ** 2 for s in STRIDES)
    assert num_fg >= 2 and fixed[1].item() * num_anchors == pytest.approx(plain[1].item() * num_fg, rel=1e-5)
    assert torch.equal(fixed[[0, 2, 3, 4]], plain[[0, 2, 3, 4]])
    fixed_total.backward()
    assert all(torch.isfinite(m.grad).all() for m in preds)


def test_signature_is_the_references():
    params = list(inspect.signature(YoloXFastDetectionLoss).parameters.values())
    assert [(p.name, p.default) for p in params] == [
        ("strides", inspect.Parameter.empty), ("num_classes", inspect.Parameter.empty), ("use_l1", False), ("center_sampling_radius", 2.5),
        ("iou_type", "iou"), ("dynamic_ks_bias", 1.1), ("sync_num_fgs", False), ("obj_loss_fix", False),
    ]
    loss = YoloXFastDetectionLoss(strides=[8, 16, 32], num_classes=10, use_l1=True)
    assert isinstance(loss, YoloXDetectionLoss) and loss.dynamic_ks_bias == 1.1
    with pytest.raises(ValueError, match="dynamic_ks_bias"):
        YoloXFastDetectionLoss(STRIDES, NUM_CLASSES, dynamic_ks_bias=0)
