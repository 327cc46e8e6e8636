"""YoloXDetectionLoss: hand-computed values, empty targets, the L1 switch, input checks, and overfitting."""

import math

import pytest
import torch

from trainwright.models import get_model
from trainwright.models.detection.yolox_loss import YoloXDetectionLoss, pad_targets

SIZE, STRIDES, NUM_CLASSES = 64, (8, 16, 32), 2
NUM_ANCHORS = sum((SIZE // s) ** 2 for s in STRIDES)  # 64 + 16 + 4


def zero_maps(batch=1, requires_grad=False):
    """Raw maps [B, 1, H, W, 5 + C] with all logits 0 and tiny (1 px) boxes at each cell corner."""
    maps = []
    for s in STRIDES:
        m = torch.zeros(batch, 1, SIZE // s, SIZE // s, 5 + NUM_CLASSES)
        m[..., 2:4] = math.log(1 / s)
        maps.append(m.requires_grad_(requires_grad))
    return maps


def exact_maps(gt_box, cells):
    """Zero maps where the stride-8 cells (col, row) predict gt_box exactly (inverse of the decoding)."""
    maps = zero_maps()
    cx, cy, w, h = gt_box
    for col, row in cells:
        maps[0][0, 0, row, col, :4] = torch.tensor([cx / 8 - col, cy / 8 - row, math.log(w / 8), math.log(h / 8)])
    return maps


def test_hand_computed_loss_when_four_anchors_predict_the_box_exactly():
    gt_box = (32.0, 32.0, 16.0, 16.0)  # covers the centres of stride-8 cells (3..4, 3..4), no coarser centre
    cells = [(3, 3), (4, 3), (3, 4), (4, 4)]
    targets = torch.tensor([[0, 1, *gt_box]])
    loss = YoloXDetectionLoss(STRIDES, NUM_CLASSES, use_l1=True)
    total, components = loss(exact_maps(gt_box, cells), targets)
    parts = dict(zip(loss.component_names, components.tolist()))
    # every logit is 0, so each BCE term is ln 2 whatever its target; 4 foreground anchors (k = sum of 4 IoUs of 1).
    assert parts["num_fg"] == 4
    assert parts["iou"] == pytest.approx(0, abs=1e-5)
    assert parts["l1"] == pytest.approx(0, abs=1e-5)
    assert parts["obj"] == pytest.approx(NUM_ANCHORS * math.log(2) / 4, rel=1e-5)
    assert parts["cls"] == pytest.approx(NUM_CLASSES * math.log(2), rel=1e-5)
    assert parts["Loss"] == pytest.approx(total.item()) == pytest.approx(parts["obj"] + parts["cls"], rel=1e-5)


def test_iou_part_is_one_minus_iou_squared_and_enters_the_total_times_reg_weight():
    gt_box = (32.0, 32.0, 16.0, 16.0)
    maps = exact_maps(gt_box, [(3, 3)])
    maps[0][0, 0, 3, 3, 2] = math.log(8 / 8)  # width 8 instead of 16 -> IoU 0.5 with the box
    loss = YoloXDetectionLoss(STRIDES, NUM_CLASSES)
    total, components = loss(maps, torch.tensor([[0, 0, *gt_box]]))
    # the reference's component names; the iou part is logged without the weight, the total carries it
    assert loss.component_names == ["iou", "obj", "cls", "l1", "num_fg", "Loss"]
    # one foreground anchor (top IoU 0.5 -> k = 1), the cheapest: the IoU-0.5 prediction
    assert components[4] == 1
    assert components[0].item() == pytest.approx(1 - 0.5**2, rel=1e-5)
    iou, obj, cls, l1 = components[:4].tolist()
    assert total.item() == pytest.approx(5.0 * iou + obj + cls + l1, rel=1e-6) == pytest.approx(components[5].item())
    giou = YoloXDetectionLoss(STRIDES, NUM_CLASSES, iou_type="giou")(maps, torch.tensor([[0, 0, *gt_box]]))[1]
    assert giou[0].item() == pytest.approx(1 - 0.5, rel=1e-5)  # the width-8 box lies inside the box


def test_empty_targets_give_a_background_only_loss_with_finite_gradients():
    maps = zero_maps(batch=2, requires_grad=True)
    loss = YoloXDetectionLoss(STRIDES, NUM_CLASSES, use_l1=True)
    total, components = loss(maps, torch.zeros(0, 6))
    total.backward()
    assert all(torch.isfinite(m.grad).all() for m in maps)
    parts = dict(zip(loss.component_names, components.tolist()))
    assert parts["iou"] == parts["cls"] == parts["l1"] == parts["num_fg"] == 0
    assert parts["obj"] == pytest.approx(2 * NUM_ANCHORS * math.log(2), rel=1e-5)  # divided by max(num_fg, 1)
    # the objectness gradient pushes every logit down
    assert all((m.grad[..., 4] > 0).all() for m in maps)


def test_an_image_without_targets_beside_one_with_targets():
    maps = zero_maps(batch=2, requires_grad=True)
    total, components = YoloXDetectionLoss(STRIDES, NUM_CLASSES)(maps, torch.tensor([[1, 0, 20.0, 40.0, 24.0, 12.0]]))
    total.backward()
    assert torch.isfinite(total) and components[4] > 0
    assert all(torch.isfinite(m.grad).all() for m in maps)
    # no box in image 0: only objectness gradients there
    assert all(m.grad[0, ..., [0, 1, 2, 3, 5, 6]].abs().max() == 0 for m in maps)


def test_use_l1_adds_the_l1_term_and_can_be_flipped():
    torch.manual_seed(0)
    maps = [torch.randn(2, 1, SIZE // s, SIZE // s, 5 + NUM_CLASSES) for s in STRIDES]
    targets = torch.tensor([[0, 1, 30.0, 20.0, 20.0, 30.0], [1, 0, 40.0, 40.0, 40.0, 30.0]])
    loss = YoloXDetectionLoss(STRIDES, NUM_CLASSES)
    total_off, off = loss(maps, targets)
    loss.use_l1 = True
    total_on, on = loss(maps, targets)
    assert off[3] == 0 and on[3] > 0
    torch.testing.assert_close(on[:3], off[:3])
    assert total_on.item() == pytest.approx(total_off.item() + on[3].item(), rel=1e-5)


def test_loss_does_not_depend_on_the_order_of_target_rows():
    torch.manual_seed(1)
    maps = [torch.randn(3, 1, SIZE // s, SIZE // s, 5 + NUM_CLASSES) for s in STRIDES]
    targets = torch.tensor(
        [[2, 1, 30.0, 20.0, 20.0, 30.0], [0, 0, 40.0, 40.0, 40.0, 30.0], [2, 0, 50.0, 10.0, 8.0, 8.0]]
    )
    loss = YoloXDetectionLoss(STRIDES, NUM_CLASSES, use_l1=True)
    torch.testing.assert_close(loss(maps, targets)[1], loss(maps, targets.flip(0))[1])


def test_pad_targets_groups_rows_by_image():
    targets = torch.tensor([[1, 0, 1, 1, 1, 1], [0, 1, 2, 2, 2, 2], [1, 1, 3, 3, 3, 3.0]])
    boxes, classes, valid = pad_targets(targets, batch_size=3)
    assert boxes.shape == (3, 2, 4)
    assert valid.tolist() == [[True, False], [True, True], [False, False]]
    assert classes[1].tolist() == [0, 1] and boxes[1, :, 0].tolist() == [1, 3]


def test_bad_inputs_name_the_problem():
    loss = YoloXDetectionLoss(STRIDES, NUM_CLASSES)
    with pytest.raises(ValueError, match="targets must have shape"):
        loss(zero_maps(), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="class must be in"):
        loss(zero_maps(), torch.tensor([[0, 2, 8.0, 8.0, 4.0, 4.0]]))
    with pytest.raises(ValueError, match="image index"):
        loss(zero_maps(), torch.tensor([[1, 0, 8.0, 8.0, 4.0, 4.0]]))
    with pytest.raises(ValueError, match=r"preds\[1\]"):
        loss([zero_maps()[0], torch.zeros(1, 1, 4, 4, 9), zero_maps()[2]], torch.zeros(0, 6))
    with pytest.raises(ValueError, match="list of 3 maps"):
        loss(zero_maps()[:2], torch.zeros(0, 6))
    with pytest.raises(ValueError, match="iou_type"):
        YoloXDetectionLoss(iou_type="ciou")


@pytest.mark.slow
def test_yolox_n_overfits_one_image():
    torch.manual_seed(0)
    model = get_model("yolox_n", num_classes=NUM_CLASSES)
    model.train()
    image = torch.rand(1, 3, SIZE, SIZE) * 255
    targets = torch.tensor([[0, 1, 20.0, 24.0, 24.0, 16.0], [0, 0, 44.0, 40.0, 28.0, 36.0]])
    loss = YoloXDetectionLoss(model.strides, model.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    history = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation
    try:
        for _ in range(40):
            total, _ = loss(model(image), targets)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            history.append(total.item())
    finally:
        torch.set_num_threads(threads)
    assert all(math.isfinite(v) for v in history)
    # single-image batch statistics make single steps noisy: compare the last few steps with the first
    assert sum(history[-5:]) / 5 < 0.5 * history[0], history


def test_the_trainer_builds_it_by_name():
    from trainwright.training.losses import build_loss, loss_item_names

    criterion = build_loss("yolox_loss", {"num_classes": 3, "use_l1": True})
    assert isinstance(criterion, YoloXDetectionLoss) and criterion.num_classes == 3 and criterion.use_l1
    assert loss_item_names(criterion, 6) == [f"YoloXDetectionLoss/{n}" for n in criterion.component_names]
