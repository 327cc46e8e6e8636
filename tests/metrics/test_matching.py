"""The batched greedy matcher equals COCO's sequential loop; hand-checked cases for its rules."""

import pytest
import torch

from trainwright.metrics.matching import greedy_match, pairwise_iou_xywh, rank_within_groups


def _sequential_oracle(det_boxes, det_group, det_rank, gt_boxes, gt_group, gt_crowd, gt_ignore, thresholds):
    """COCO's evaluateImg loop, one group, setting and threshold at a time (slow, obviously right)."""
    num_det, num_settings, num_thr = len(det_boxes), gt_ignore.shape[1], len(thresholds)
    matched = torch.zeros(num_det, num_settings, num_thr, dtype=torch.bool)
    matched_ignored = torch.zeros_like(matched)
    for group in det_group.unique().tolist():
        dets = sorted((i for i in range(num_det) if det_group[i] == group), key=lambda i: int(det_rank[i]))
        gts = [g for g in range(len(gt_boxes)) if gt_group[g] == group]
        for a in range(num_settings):
            gts_sorted = sorted(gts, key=lambda g: bool(gt_ignore[g, a]))  # stable: not ignored first
            for t, thr in enumerate(thresholds.tolist()):
                taken = set()
                for d in dets:
                    best, m = min(thr, 1 - 1e-10), None
                    for g in gts_sorted:
                        if g in taken and not gt_crowd[g]:
                            continue
                        if m is not None and not gt_ignore[m, a] and gt_ignore[g, a]:
                            break
                        iou = float(
                            pairwise_iou_xywh(det_boxes[d : d + 1], gt_boxes[g : g + 1], gt_crowd[g : g + 1])[0]
                        )
                        if iou < best:
                            continue
                        best, m = iou, g
                    if m is not None:
                        taken.add(m)
                        matched[d, a, t] = True
                        matched_ignored[d, a, t] = bool(gt_ignore[m, a])
    return matched, matched_ignored


def _random_case(seed, num_groups=3, max_det=12, max_gt=8):
    g = torch.Generator().manual_seed(seed)
    num_det, num_gt = (
        int(torch.randint(0, max_det * num_groups, (1,), generator=g)),
        int(torch.randint(0, max_gt * num_groups, (1,), generator=g)),
    )
    det_group = torch.randint(0, num_groups, (num_det,), generator=g)
    gt_group = torch.randint(0, num_groups, (num_gt,), generator=g)
    centre = torch.rand(num_gt, 2, generator=g, dtype=torch.float64) * 60
    size = torch.rand(num_gt, 2, generator=g, dtype=torch.float64) * 30 + 5
    gt_boxes = torch.cat([centre, size], 1)
    src = torch.randint(0, max(num_gt, 1), (num_det,), generator=g)
    det_boxes = torch.rand(num_det, 4, generator=g, dtype=torch.float64) * 40 + 1
    if num_gt:
        jitter = torch.randn(num_det, 4, generator=g, dtype=torch.float64) * 4
        det_boxes = (gt_boxes[src] + jitter).abs() + 0.5
    scores = (torch.rand(num_det, generator=g) * 5).round()  # many ties
    gt_crowd = torch.rand(num_gt, generator=g) < 0.2
    gt_ignore = torch.stack([gt_crowd, gt_crowd | (torch.rand(num_gt, generator=g) < 0.3)], 1)
    rank = rank_within_groups(det_group, scores)
    return det_boxes, det_group, rank, gt_boxes, gt_group, gt_crowd, gt_ignore, torch.tensor([0.1, 0.3, 0.5, 0.75])


@pytest.mark.parametrize("seed", range(12))
def test_equals_the_sequential_coco_loop(seed):
    case = _random_case(seed)
    got = greedy_match(*case)
    want = _sequential_oracle(*case)
    assert torch.equal(got[0], want[0])
    assert torch.equal(got[1], want[1])


def test_an_iou_tie_goes_to_the_last_ground_truth():
    # det 0 overlaps A and B equally (IoU 1/3); det 1 only overlaps A. COCO gives det 0 the later of the two.
    a, b = [0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 10.0, 10.0]
    dets = torch.tensor([[5.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)

    def matched_with(gts):
        m, _ = greedy_match(
            dets,
            torch.zeros(2, dtype=torch.long),
            torch.tensor([0, 1]),
            torch.tensor(gts, dtype=torch.float64),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, dtype=torch.bool),
            torch.zeros(2, 1, dtype=torch.bool),
            torch.tensor([0.3]),
        )
        return m[:, 0, 0].tolist()

    assert matched_with([a, b]) == [True, True]  # det 0 takes B, det 1 takes A
    assert matched_with([b, a]) == [True, False]  # det 0 takes A, nothing is left for det 1


def test_better_overlap_wins_and_the_higher_score_chooses_first():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    det = torch.tensor([[4.0, 0.0, 10.0, 10.0], [1.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    # det 0 (rank 0) overlaps gt1 best (IoU 0.82) and takes it; det 1 then takes gt0 (IoU 0.82).
    matched, _ = greedy_match(
        det,
        torch.zeros(2, dtype=torch.long),
        torch.tensor([0, 1]),
        gt,
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.bool),
        torch.zeros(2, 1, dtype=torch.bool),
        torch.tensor([0.7]),
    )
    assert matched[:, 0, 0].tolist() == [True, True]
    # At 0.9 neither reaches the threshold.
    matched, _ = greedy_match(
        det,
        torch.zeros(2, dtype=torch.long),
        torch.tensor([0, 1]),
        gt,
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.bool),
        torch.zeros(2, 1, dtype=torch.bool),
        torch.tensor([0.9]),
    )
    assert not matched.any()


def test_crowd_region_is_reusable_and_uses_intersection_over_detection_area():
    crowd = torch.tensor([[0.0, 0.0, 100.0, 100.0]], dtype=torch.float64)
    dets = torch.tensor([[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 5.0, 5.0], [95.0, 95.0, 10.0, 10.0]], dtype=torch.float64)
    matched, ignored = greedy_match(
        dets,
        torch.zeros(3, dtype=torch.long),
        torch.tensor([0, 1, 2]),
        crowd,
        torch.zeros(1, dtype=torch.long),
        torch.tensor([True]),
        torch.tensor([[True]]),
        torch.tensor([0.5]),
    )
    # IoA 1, 1 and 0.25: the first two are ignored (matched to the crowd), the third is not matched.
    assert matched[:, 0, 0].tolist() == [True, True, False]
    assert ignored[:, 0, 0].tolist() == [True, True, False]


def test_regular_ground_truth_is_preferred_over_an_ignored_one():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0]], dtype=torch.float64)
    det = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    args = (
        det,
        torch.zeros(1, dtype=torch.long),
        torch.zeros(1, dtype=torch.long),
        gt,
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.bool),
        torch.tensor([[True], [False]]),
        torch.tensor([0.5]),
    )
    matched, ignored = greedy_match(*args)
    assert matched.item() and not ignored.item()  # IoU 0.9 to the regular one beats IoU 1 to the ignored one


def test_groups_never_mix():
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    matched, _ = greedy_match(
        box,
        torch.tensor([1]),
        torch.tensor([0]),
        box,
        torch.tensor([2]),
        torch.tensor([False]),
        torch.tensor([[False]]),
        torch.tensor([0.5]),
    )
    assert not matched.any()


def test_empty_inputs():
    empty = torch.zeros(0, 4, dtype=torch.float64)
    m, i = greedy_match(
        empty,
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        empty,
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, dtype=torch.bool),
        torch.zeros(0, 2, dtype=torch.bool),
        torch.tensor([0.5, 0.7]),
    )
    assert m.shape == (0, 2, 2) and i.shape == (0, 2, 2)


def test_rank_within_groups_breaks_ties_by_input_order():
    rank = rank_within_groups(torch.tensor([0, 1, 0, 0, 1]), torch.tensor([0.5, 0.1, 0.9, 0.5, 0.3]))
    assert rank.tolist() == [1, 1, 0, 2, 0]


def test_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3, dtype=torch.float64)
    b = torch.tensor([[5.0, 0.0, 10.0, 10.0], [20.0, 0.0, 5.0, 5.0], [0.0, 0.0, 100.0, 100.0]], dtype=torch.float64)
    iou = pairwise_iou_xywh(a, b, torch.tensor([False, False, True]))
    assert iou.tolist() == pytest.approx([50 / 150, 0.0, 1.0])
