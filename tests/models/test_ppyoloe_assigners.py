"""ATSS and task-aligned assignment on small cases computed by hand (ties, boxes with no anchor inside, conflicts)."""

import pytest
import torch

from trainwright.models.detection.atss import atss_assign, nearest_per_level
from trainwright.models.detection.label_assignment import k_best_mask, pairwise_iou_xyxy, points_inside_boxes
from trainwright.models.detection.task_aligned import task_aligned_assign


def cell_grid(cols: int, rows: int, cell: float) -> torch.Tensor:
    """Anchor boxes [rows * cols, 4]: the grid cells themselves, row-major (anchor i = row i // cols, col i % cols)."""
    ys, xs = torch.meshgrid(torch.arange(rows) * cell, torch.arange(cols) * cell, indexing="ij")
    corner = torch.stack([xs, ys], -1).reshape(-1, 2).float()
    return torch.cat([corner, corner + cell], -1)


def padded(per_image: list[list[list[float]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image box lists -> (boxes [B, G, 4] zero-padded, valid bool [B, G])."""
    slots = max(len(boxes) for boxes in per_image)
    gt = torch.zeros(len(per_image), slots, 4)
    valid = torch.zeros(len(per_image), slots, dtype=torch.bool)
    for b, boxes in enumerate(per_image):
        if boxes:
            gt[b, : len(boxes)] = torch.tensor(boxes)
            valid[b, : len(boxes)] = True
    return gt, valid


def test_k_best_mask_breaks_ties_towards_the_lower_index():
    values = torch.tensor([[1.0, 0.0, 0.0, 2.0, 0.0], [3.0, 3.0, 1.0, 3.0, 3.0]])
    assert k_best_mask(values, 2, largest=False).tolist() == [[False, True, True, False, False],
                                                              [True, False, True, False, False]]
    assert k_best_mask(values, 2, largest=True).tolist() == [[True, False, False, True, False],
                                                             [True, True, False, False, False]]
    assert k_best_mask(values, 9, largest=True).all()  # k larger than the row: everything


def test_iou_and_inside_helpers():
    boxes = torch.tensor([[[0.0, 0.0, 12.0, 12.0]]])
    anchors = cell_grid(2, 1, 8)  # [0, 0, 8, 8], [8, 0, 16, 8]
    torch.testing.assert_close(pairwise_iou_xyxy(boxes, anchors), torch.tensor([[[64 / 144, 32 / 176]]]))
    # Strictly inside: a point on the edge is outside.
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [13.0, 4.0]])
    assert points_inside_boxes(points, boxes).tolist() == [[[True, False, False]]]


def test_atss_on_a_hand_computed_case():
    # One level: a 4 x 4 grid of 8 px cells; anchor boxes are the cells, centres at 4, 12, 20, 28.
    anchors = cell_grid(4, 4, 8)
    gt, valid = padded([
        # A: nearest centres 0 (d 2.83), then 1 and 4 tied (d 6.32): candidates {0, 1, 4}, IoUs 64/144 and
        #    twice 32/176 -> threshold mean + std = 0.2694 + 0.1516 = 0.4210: only anchor 0 (0.444) is positive.
        # B: tiny box between the centres: no anchor centre inside it, no positive.
        [[0, 0, 12, 12], [17, 1, 19, 3]],
        # D: candidates {0, 1, 4}, IoUs 64/81, 8/137, 8/137 -> threshold 0.7248: anchor 0 (0.790) positive.
        # E: candidates {0, 1, 4}, IoUs 49/96, 14/131, 14/131 -> threshold 0.4744: anchor 0 (0.510) positive,
        #    but anchor 0 overlaps D more (0.790): it keeps D and E is left without a positive.
        # F: nearest 15, then 11 and 14 tied: like A mirrored, anchor 15 positive.
        [[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 32, 32]],
    ])
    pred = anchors.expand(2, -1, -1)  # predictions equal to the anchor boxes: the score is the anchor-box IoU
    result = atss_assign(anchors, [16], gt, valid, pred, topk=3)

    assert result.fg_mask[0].nonzero().flatten().tolist() == [0]
    assert result.fg_mask[1].nonzero().flatten().tolist() == [0, 15]
    assert result.matched_gt[0, 0] == 0 and result.matched_gt[1, 0] == 0 and result.matched_gt[1, 15] == 2
    torch.testing.assert_close(result.target_score[0, 0], torch.tensor(64 / 144))
    torch.testing.assert_close(result.target_score[1, [0, 15]], torch.tensor([64 / 81, 64 / 144]))
    assert result.target_score[~result.fg_mask].abs().sum() == 0


def test_atss_equal_candidate_ious_give_no_positive():
    # The box centre sits on a grid corner: the 4 surrounding anchors tie on distance, the candidates are the
    # three lowest-index ones, all with IoU 0.25; the threshold is 0.25 + 0 and positives need IoU above it.
    anchors = cell_grid(4, 4, 8)
    gt, valid = padded([[[8, 8, 24, 24]]])
    result = atss_assign(anchors, [16], gt, valid, anchors[None], topk=3)
    assert not result.fg_mask.any()


def test_atss_candidates_are_the_topk_nearest_of_every_level():
    distances = torch.tensor([[5.0, 1.0, 3.0, 1.0, 9.0, 0.5, 7.0]])
    # Level 0 = anchors 0..3: the 2 nearest are 1 and 3; level 1 = anchors 4..6: 5 and 6.
    assert nearest_per_level(distances, [4, 3], 2).tolist() == [[False, True, False, True, False, True, True]]
    # A level with fewer anchors than topk contributes all of them.
    assert nearest_per_level(distances, [6, 1], 2)[0, 6]


def test_atss_on_two_levels():
    # Level 0: 4 x 4 cells of 8 px (anchors 0..15); level 1: 2 x 2 cells of 16 px (anchors 16..19); topk 2.
    # Box [0, 0, 17, 17], centre (8.5, 8.5): level 0 candidates 5 (d 4.95) and 1 (d 5.70, tied with 4), both
    # cells inside the box (IoU 64/289); level 1 candidates 16 (d 0.71, IoU 256/289) and 17 (d 15.5, tied with
    # 18, IoU 16/529). Threshold 0.340 + 0.375 = 0.715: anchor 16 alone is positive.
    anchors = torch.cat([cell_grid(4, 4, 8), cell_grid(2, 2, 16)])
    gt, valid = padded([[[0, 0, 17, 17]]])
    result = atss_assign(anchors, [16, 4], gt, valid, anchors[None], topk=2)
    assert result.fg_mask[0].nonzero().flatten().tolist() == [16]
    torch.testing.assert_close(result.target_score[0, 16], torch.tensor(256 / 289))
    with pytest.raises(ValueError, match="sums to 19"):
        atss_assign(anchors, [16, 3], gt, valid, anchors[None])


def test_task_aligned_assignment_on_a_hand_computed_case():
    # Five anchor points on a row (x = 4, 12, 20, 28, 36; y = 4); one class.
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0], [28.0, 4.0], [36.0, 4.0]])
    box = [0.0, 0.0, 32.0, 8.0]  # contains the first four points, not the fifth
    pred_boxes = torch.tensor(box).expand(1, 5, 4)  # every prediction equals the box: IoU 1, metric = score
    scores = torch.tensor([[[0.9], [0.5], [0.5], [0.8], [0.99]]])
    gt, valid = padded([[box]])
    classes = torch.zeros(1, 1, dtype=torch.long)
    result = task_aligned_assign(scores, pred_boxes, points, gt, classes, valid, topk=2)
    # The two best inside the box are anchors 0 (0.9) and 3 (0.8); anchor 4 scores more but lies outside.
    assert result.fg_mask[0].tolist() == [True, False, False, True, False]
    # target = t / max t * max IoU: 0.9 / 0.9 * 1 and 0.8 / 0.9 * 1.
    torch.testing.assert_close(result.target_score[0], torch.tensor([1.0, 0, 0, 0.8 / 0.9, 0]))

    tied = torch.full((1, 5, 1), 0.5)  # equal metrics: the lower indices win
    assert task_aligned_assign(tied, pred_boxes, points, gt, classes, valid, topk=2).fg_mask[0].tolist() == \
        [True, True, False, False, False]


def test_task_aligned_conflicts_and_boxes_without_anchors():
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0]])
    # Box 0 and box 1 both contain both points; anchor 1's predicted box overlaps box 1 exactly, box 0 less.
    # Box 2 is tiny and contains no point.
    gt, valid = padded([[[0, 0, 16, 8], [8, 0, 16, 8], [13, 5, 15, 7]]])
    pred_boxes = torch.tensor([[[0.0, 0.0, 16.0, 8.0], [8.0, 0.0, 16.0, 8.0]]])
    scores = torch.tensor([[[0.6, 0.6], [0.7, 0.7]]])
    classes = torch.tensor([[0, 1, 0]])
    result = task_aligned_assign(scores, pred_boxes, points, gt, classes, valid, topk=2)
    # Box 0 takes anchors 0 and 1; box 1 takes 1 (and 0); anchor 1 overlaps box 1 most (IoU 1 vs 0.5).
    assert result.fg_mask[0].tolist() == [True, True]
    assert result.matched_gt[0].tolist() == [0, 1]
    # Box 0 keeps anchor 0 only (t = 0.6, IoU 1): score 1; box 1 keeps anchor 1 (t = 0.7, IoU 1): score 1.
    torch.testing.assert_close(result.target_score[0], torch.tensor([1.0, 1.0]))


def test_batched_assignment_equals_one_image_at_a_time():
    gen = torch.Generator().manual_seed(0)
    anchors = cell_grid(8, 8, 8)
    points = (anchors[:, :2] + anchors[:, 2:]) / 2
    xy = torch.rand(3, 5, 2, generator=gen) * 48
    gt = torch.cat([xy, xy + 4 + torch.rand(3, 5, 2, generator=gen) * 24], -1)
    valid = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])
    classes = torch.randint(0, 4, (3, 5), generator=gen)
    pred = anchors + torch.rand(3, 64, 4, generator=gen) * 6 - 3
    scores = torch.rand(3, 64, 4, generator=gen)
    for assign in (lambda *a: atss_assign(anchors, [64], a[0], a[1], a[3], topk=4),
                   lambda *a: task_aligned_assign(a[4], a[3], points, a[0], a[2], a[1], topk=5)):
        batched = assign(gt, valid, classes, pred, scores)
        for b in range(3):
            n = int(valid[b].sum())
            alone = assign(gt[b:b + 1, :n], valid[b:b + 1, :n], classes[b:b + 1, :n], pred[b:b + 1], scores[b:b + 1])
            assert torch.equal(batched.fg_mask[b], alone.fg_mask[0])
            assert torch.equal(batched.matched_gt[b][alone.fg_mask[0]], alone.matched_gt[0][alone.fg_mask[0]])
            torch.testing.assert_close(batched.target_score[b], alone.target_score[0])
        assert not batched.fg_mask[2].any()
        assert batched.fg_mask[0].any()
