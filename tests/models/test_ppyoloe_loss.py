"""PPYoloELoss: its terms on hand-made cases, empty targets, crowd regions, a one-image overfit."""

import math

import pytest
import torch

from trainwright.models import get_model
from trainwright.models.detection.atss import atss_assign
from trainwright.models.detection.ppyoloe_loss import PPYoloELoss, distribution_focal_loss, giou_loss
from trainwright.training.losses import build_loss, loss_item_names

NUM_CLASSES = 3


def tiny_model():
    torch.manual_seed(0)
    return get_model("ppyoloe_s", NUM_CLASSES, depth_mult=0.33, width_mult=0.125)


def one_image_targets():
    # (image, class, cx, cy, w, h) in pixels of a 64 x 64 image
    return torch.tensor([[0, 1, 20.0, 24.0, 24.0, 20.0], [0, 2, 44.0, 40.0, 28.0, 36.0]])


def test_giou_and_distribution_focal_terms():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    assert giou_loss(boxes, boxes).abs().max() < 1e-6
    # Disjoint unit squares 1 apart: IoU 0, enclosing area 3, union 2 -> GIoU = -1/3, loss 4/3.
    torch.testing.assert_close(giou_loss(boxes[:1], torch.tensor([[2.0, 0.0, 3.0, 1.0]])), torch.tensor([4 / 3]))
    # Uniform bins: every bin has probability 1/17, so the loss is log(17) whatever the distance.
    uniform = torch.zeros(2, 4, 17)
    distances = torch.tensor([[0.0, 2.3, 7.5, 15.99]] * 2)
    torch.testing.assert_close(distribution_focal_loss(uniform, distances), torch.full((2,), math.log(17)))
    # Distance 2.25: 0.75 * CE(bin 2) + 0.25 * CE(bin 3); with all mass on bins 2 and 3 in that ratio it is the
    # entropy of (0.75, 0.25), the minimum.
    logits = torch.full((1, 4, 17), -1e4)
    logits[..., 2], logits[..., 3] = math.log(0.75), math.log(0.25)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    torch.testing.assert_close(distribution_focal_loss(logits, torch.full((1, 4), 2.25)), torch.tensor([entropy]))


def test_components_and_registered_name():
    criterion = build_loss("ppyoloe_loss", {"num_classes": NUM_CLASSES})
    assert isinstance(criterion, PPYoloELoss)
    assert (criterion.classification_loss_weight, criterion.iou_loss_weight, criterion.dfl_loss_weight) == (1, 2.5, 0.5)
    assert criterion.use_static_assigner and criterion.use_varifocal_loss and criterion.reg_max == 16
    assert loss_item_names(criterion, 4) == ["PPYoloELoss/loss_cls", "PPYoloELoss/loss_iou", "PPYoloELoss/loss_dfl",
                                             "PPYoloELoss/loss"]
    model = tiny_model().train()
    total, components = criterion(model(torch.rand(1, 3, 64, 64) * 255), one_image_targets())
    cls, iou, dfl, logged_total = components
    torch.testing.assert_close(logged_total, cls + 2.5 * iou + 0.5 * dfl)
    torch.testing.assert_close(total.detach(), logged_total)
    assert iou > 0 and dfl > 0


def test_eval_output_gives_the_loss_of_its_raw_part():
    model = tiny_model().train()
    raw = model(torch.rand(1, 3, 64, 64) * 255)
    criterion = PPYoloELoss(NUM_CLASSES)
    torch.testing.assert_close(criterion(((None, None), raw), one_image_targets())[1],
                               criterion(raw, one_image_targets())[1])


@pytest.mark.parametrize("static", [True, False])
def test_empty_targets_give_finite_gradients(static):
    model = tiny_model().train()
    criterion = PPYoloELoss(NUM_CLASSES, use_static_assigner=static)
    total, components = criterion(model(torch.rand(2, 3, 64, 64) * 255), torch.zeros(0, 6))
    total.backward()
    assert torch.isfinite(total) and components[1] == 0 and components[2] == 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.head.pred_cls[0].bias.grad.abs().sum() > 0  # the background loss still trains the classifier


def test_crowd_regions_are_never_positives_and_not_background_for_their_class():
    model = tiny_model().train()
    raw = model(torch.rand(1, 3, 64, 64) * 255)
    class_logits = raw[0]
    class_logits.retain_grad()
    crowd = torch.tensor([[0, 1, 32.0, 32.0, 64.0, 64.0]])  # covers the whole image, class 1
    criterion = PPYoloELoss(NUM_CLASSES)
    total, components = criterion(raw, torch.zeros(0, 6), crowd_targets=crowd)
    assert components[1] == 0 and components[2] == 0  # no positive: the crowd box is no target
    total.backward()
    grad = class_logits.grad[0]
    assert grad[:, 1].abs().max() == 0  # class 1: neither positive nor background anywhere
    assert grad[:, 0].abs().min() > 0 and grad[:, 2].abs().min() > 0

    # With a real box of class 1 inside the crowd region, that box's positives (ATSS picks them from the anchor
    # boxes alone) still learn class 1.
    model.zero_grad()
    raw = model(torch.rand(1, 3, 64, 64) * 255)
    raw[0].retain_grad()
    criterion(raw, one_image_targets(), crowd_targets=crowd)[0].backward()
    t = one_image_targets()
    gt = torch.cat([t[:, 2:4] - t[:, 4:] / 2, t[:, 2:4] + t[:, 4:] / 2], -1)[None]
    anchor_boxes, counts = raw[2], raw[4]
    assignment = atss_assign(anchor_boxes, counts, gt, torch.ones(1, 2, dtype=torch.bool), anchor_boxes[None])
    positives_of_class_1 = assignment.fg_mask[0] & (assignment.matched_gt[0] == 0)
    assert positives_of_class_1.any() and raw[0].grad[0, positives_of_class_1, 1].abs().min() > 0


def test_bad_inputs_are_named():
    criterion = PPYoloELoss(NUM_CLASSES)
    raw = tiny_model().train()(torch.rand(1, 3, 64, 64) * 255)
    with pytest.raises(ValueError, match=r"targets class must be in \[0, 3\)"):
        criterion(raw, torch.tensor([[0, 5, 10.0, 10.0, 4.0, 4.0]]))
    with pytest.raises(ValueError, match=r"image index must be in \[0, 1\)"):
        criterion(raw, torch.tensor([[1, 0, 10.0, 10.0, 4.0, 4.0]]))
    with pytest.raises(ValueError, match=r"crowd_targets must have shape \[N, 6\]"):
        criterion(raw, one_image_targets(), crowd_targets=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="tuple of 6 items"):
        criterion(raw[:3], one_image_targets())
    with pytest.raises(ValueError, match="box logits must have shape"):
        PPYoloELoss(NUM_CLASSES, reg_max=8)(raw, one_image_targets())
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        PPYoloELoss(0)


def test_loss_falls_when_overfitting_one_image():
    # The reference schedule in miniature: ATSS first, then the task-aligned assigner.
    model = tiny_model().train()
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 255
    criterion = PPYoloELoss(NUM_CLASSES)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(24):
        criterion.use_static_assigner = step < 12
        total, _ = criterion(model(image), one_image_targets())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    static, aligned = losses[:12], losses[12:]
    assert min(static[-3:]) < 0.6 * static[0], losses
    assert min(aligned[-3:]) < aligned[0], losses
