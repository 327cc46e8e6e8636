"""SimOTA assignment: the centre prior, the class cost, dynamic k, conflicts, padding and batching."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import box_convert, box_iou

from trainwright.models.detection.simota import (
    center_prior,
    classification_cost,
    dynamic_k_matching,
    pairwise_iou_cxcywh,
    simota_assign,
)


def single_level_anchors(size: int = 64, stride: int = 8):
    """Cell centres [A, 2] and strides [A] of one row-major level."""
    cells = size // stride
    gy, gx = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
    centers = (torch.stack([gx, gy], -1).reshape(-1, 2).float() + 0.5) * stride
    return centers, torch.full((cells * cells,), float(stride))


def cell_ids(columns, rows, cells: int = 8) -> set[int]:
    return {r * cells + c for r in rows for c in columns}


def test_center_prior_marks_cells_inside_the_box_and_the_centre_square():
    centers, strides = single_level_anchors()
    # box 24..40 on both axes: centres 28 and 36 are inside; radius 2.5 * 8 = 20 keeps centres 20..44.
    gt = torch.tensor([[[32.0, 32.0, 16.0, 16.0]]])
    in_box, in_center = center_prior(centers, strides, gt, radius=2.5)
    assert set(in_box[0, 0].nonzero().flatten().tolist()) == cell_ids([3, 4], [3, 4])
    assert set(in_center[0, 0].nonzero().flatten().tolist()) == cell_ids(range(2, 6), range(2, 6))


def test_pairwise_iou_matches_torchvision():
    gen = torch.Generator().manual_seed(0)
    a = torch.cat([torch.rand(2, 5, 2, generator=gen) * 50, torch.rand(2, 5, 2, generator=gen) * 30 + 1], -1)
    b = torch.cat([torch.rand(2, 7, 2, generator=gen) * 50, torch.rand(2, 7, 2, generator=gen) * 30 + 1], -1)
    ours = pairwise_iou_cxcywh(a, b)
    for i in range(2):
        expected = box_iou(box_convert(a[i], "cxcywh", "xyxy"), box_convert(b[i], "cxcywh", "xyxy"))
        torch.testing.assert_close(ours[i], expected, atol=1e-6, rtol=1e-5)


def test_classification_cost_is_the_summed_bce_against_one_hot():
    gen = torch.Generator().manual_seed(1)
    scores = torch.rand(2, 6, 4, generator=gen) * 0.98 + 0.01
    classes = torch.tensor([[0, 3, 1], [2, 2, 0]])
    cost = classification_cost(scores, classes)
    one_hot = torch.nn.functional.one_hot(classes, 4).float()  # [B, G, C]
    expected = torch.nn.functional.binary_cross_entropy(
        scores[:, None].expand(-1, 3, -1, -1), one_hot[:, :, None].expand(-1, -1, 6, -1), reduction="none"
    ).sum(-1)
    torch.testing.assert_close(cost, expected, atol=1e-5, rtol=1e-5)


def test_dynamic_k_is_the_truncated_sum_of_the_best_ious_and_picks_the_cheapest():
    ious = torch.tensor([[[0.9, 0.8, 0.7, 0.1, 0.0, 0.0]]])  # sum 2.5 -> k = 2
    cost = torch.tensor([[[5.0, 1.0, 2.0, 0.5, 9.0, 9.0]]])
    candidates = torch.tensor([[[True, True, True, False, True, True]]])
    matching = dynamic_k_matching(cost, ious, candidates)
    # anchor 3 is cheapest but not a candidate; the next two cheapest are 1 and 2.
    assert matching[0, 0].nonzero().flatten().tolist() == [1, 2]


def test_dynamic_k_is_at_least_one():
    ious = torch.tensor([[[0.05, 0.1, 0.0]]])
    cost = torch.tensor([[[3.0, 4.0, 1.0]]])
    matching = dynamic_k_matching(cost, ious, torch.ones(1, 1, 3, dtype=torch.bool))
    assert matching[0, 0].tolist() == [False, False, True]


def test_anchor_claimed_by_two_boxes_goes_to_the_cheaper_one():
    ious = torch.tensor([[[0.9, 0.9, 0.0], [0.0, 0.9, 0.9]]])  # each box: k = 1
    cost = torch.tensor([[[2.0, 1.0, 8.0], [8.0, 0.5, 3.0]]])  # both pick anchor 1; box 1 is cheaper there
    matching = dynamic_k_matching(cost, ious, torch.ones(1, 2, 3, dtype=torch.bool))
    assert matching[0].tolist() == [[False, False, False], [False, True, False]]


def _exact_predictions(centers, gt_box, cells):
    """Predicted boxes [1, A, 4]: the ground-truth box at the given anchors, a far 1-pixel box elsewhere."""
    boxes = torch.tensor([500.0, 500.0, 1.0, 1.0]).repeat(1, centers.shape[0], 1)
    boxes[0, sorted(cells)] = gt_box
    return boxes


def test_box_gets_the_anchors_that_predict_it_exactly():
    centers, strides = single_level_anchors()
    gt_box = torch.tensor([32.0, 32.0, 16.0, 16.0])
    inside = cell_ids([3, 4], [3, 4])
    boxes = _exact_predictions(centers, gt_box, inside)
    scores = torch.full((1, centers.shape[0], 2), 0.5)
    result = simota_assign(
        boxes, scores, centers, strides, gt_box[None, None], torch.tensor([[1]]), torch.tensor([[True]])
    )
    # four IoUs of 1 -> k = 4, and the four exact predictions are the cheapest.
    assert set(result.fg_mask[0].nonzero().flatten().tolist()) == inside
    assert (result.matched_gt[0, sorted(inside)] == 0).all()
    torch.testing.assert_close(result.matched_iou[0, sorted(inside)], torch.ones(4))
    assert result.matched_iou[0, ~result.fg_mask[0]].abs().max() == 0


def test_anchors_outside_the_prior_are_never_candidates():
    centers, strides = single_level_anchors()
    gt_box = torch.tensor([12.0, 12.0, 8.0, 8.0])  # near the top-left corner
    far = cell_ids([7], [7])
    boxes = _exact_predictions(centers, gt_box, far)  # only a far anchor predicts the box
    scores = torch.full((1, centers.shape[0], 1), 0.5)
    result = simota_assign(
        boxes, scores, centers, strides, gt_box[None, None], torch.tensor([[0]]), torch.tensor([[True]])
    )
    assert result.fg_mask[0].sum() == 1
    assert not result.fg_mask[0, sorted(far)].any()
    in_box, in_center = center_prior(centers, strides, gt_box[None, None], 2.5)
    assert (in_box | in_center)[0, 0, result.fg_mask[0]].all()


def test_padding_slots_and_empty_images_get_nothing():
    centers, strides = single_level_anchors()
    gt = torch.tensor([[[32.0, 32.0, 16.0, 16.0], [0.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]] * 2])
    valid = torch.tensor([[True, False], [False, False]])
    boxes = torch.tensor([32.0, 32.0, 16.0, 16.0]).repeat(2, centers.shape[0], 1)
    scores = torch.full((2, centers.shape[0], 2), 0.5)
    result = simota_assign(boxes, scores, centers, strides, gt, torch.zeros(2, 2, dtype=torch.long), valid)
    assert result.fg_mask[0].any() and (result.matched_gt[0, result.fg_mask[0]] == 0).all()
    assert not result.fg_mask[1].any()
    nothing = simota_assign(boxes, scores, centers, strides, gt[:, :0], torch.zeros(2, 0).long(), valid[:, :0])
    assert not nothing.fg_mask.any() and nothing.fg_mask.shape == (2, centers.shape[0])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), counts=st.lists(st.integers(0, 4), min_size=2, max_size=3))
def test_batched_assignment_equals_per_image_assignment(seed, counts):
    gen = torch.Generator().manual_seed(seed)
    centers, strides = single_level_anchors()
    batch, slots, anchors = len(counts), max(max(counts), 1), centers.shape[0]
    gt = torch.cat(
        [torch.rand(batch, slots, 2, generator=gen) * 64, torch.rand(batch, slots, 2, generator=gen) * 40 + 2], -1
    )
    valid = torch.arange(slots)[None] < torch.tensor(counts)[:, None]
    classes = torch.randint(0, 3, (batch, slots), generator=gen)
    boxes = torch.cat(
        [torch.rand(batch, anchors, 2, generator=gen) * 64, torch.rand(batch, anchors, 2, generator=gen) * 40 + 2], -1
    )
    scores = torch.rand(batch, anchors, 3, generator=gen)
    together = simota_assign(boxes, scores, centers, strides, gt, classes, valid)
    for i, count in enumerate(counts):
        alone = simota_assign(
            boxes[i : i + 1],
            scores[i : i + 1],
            centers,
            strides,
            gt[i : i + 1, :count],
            classes[i : i + 1, :count],
            valid[i : i + 1, :count],
        )
        assert torch.equal(together.fg_mask[i], alone.fg_mask[0])
        fg = alone.fg_mask[0]
        assert torch.equal(together.matched_gt[i, fg], alone.matched_gt[0, fg])
        torch.testing.assert_close(together.matched_iou[i], alone.matched_iou[0])
        # every foreground anchor of an image with boxes points at a real (valid) box
        assert valid[i, together.matched_gt[i, fg]].all()


def test_box_far_outside_the_image_gets_no_anchor_and_breaks_nothing():
    centers, strides = single_level_anchors()
    gt = torch.tensor([[[-500.0, -500.0, 4.0, 4.0]], [[32.0, 32.0, 16.0, 16.0]]])
    boxes = torch.tensor([32.0, 32.0, 16.0, 16.0]).repeat(2, centers.shape[0], 1)
    scores = torch.full((2, centers.shape[0], 1), 0.5)
    valid = torch.ones(2, 1, dtype=torch.bool)
    result = simota_assign(boxes, scores, centers, strides, gt, torch.zeros(2, 1).long(), valid)
    assert not result.fg_mask[0].any() and result.fg_mask[1].any()
    alone = simota_assign(boxes[:1], scores[:1], centers, strides, gt[:1], torch.zeros(1, 1).long(), valid[:1])
    assert not alone.fg_mask.any()
