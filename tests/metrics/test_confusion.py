"""The detection confusion matrix: hand-computed cases and a plain sequential greedy matching as oracle."""

import pytest
import torch

from trainwright.metrics.confusion import detection_confusion_matrix, normalize_confusion_matrix


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


def confusion(preds, targets, num_classes, crowd=None, **kwargs):
    """preds: (image, class, score, x, y, w, h) rows; targets: (image, class, x, y, w, h) rows."""
    p = torch.tensor(preds, dtype=torch.float64).reshape(-1, 7)
    t = torch.tensor(targets, dtype=torch.float64).reshape(-1, 6)
    crowd = None if crowd is None else torch.tensor(crowd)
    return detection_confusion_matrix(p[:, 3:], p[:, 2], p[:, 1].long(), p[:, 0].long(), t[:, 2:], t[:, 1].long(),
                                      t[:, 0].long(), num_classes, target_crowd=crowd, **kwargs)


def test_hand_computed_matrix_with_confusion_misses_false_positives_and_a_crowd():
    targets = [
        (0, 0, 0, 0, 10, 10),  # found as class 0
        (0, 1, 20, 0, 10, 10),  # found, but as class 0
        (0, 0, 40, 0, 10, 10),  # only a prediction below the confidence threshold: missed
        (1, 1, 0, 0, 10, 10),  # found as class 1
        (1, 0, 200, 200, 50, 50),  # crowd region
    ]
    preds = [
        (0, 0, 0.9, 0, 0, 10, 10),
        (0, 0, 0.8, 20, 0, 10, 10),
        (0, 1, 0.7, 1, 0, 10, 10),  # IoU 0.82 with the first target, already taken by the better pair: FP
        (0, 1, 0.1, 40, 0, 10, 10),  # below conf_threshold 0.25: not counted
        (1, 1, 0.5, 0, 0, 10, 10),
        (1, 0, 0.6, 100, 100, 5, 5),  # overlaps nothing: FP
        (1, 1, 0.6, 210, 210, 10, 10),  # inside the crowd region: counts nowhere
    ]
    matrix = confusion(preds, targets, 2, crowd=[False, False, False, False, True])
    # rows: predicted class 0, 1, background; columns: true class 0, 1, background
    assert matrix.tolist() == [[1, 1, 1], [0, 1, 1], [1, 0, 0]]
    normalized = normalize_confusion_matrix(matrix)
    torch.testing.assert_close(normalized[:, 0], torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(normalized[:, 2], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))


def test_greedy_by_iou_lets_a_displaced_prediction_take_its_next_target():
    # pairs by IoU: (A, g1) 0.9, (B, g1) 0.8, (B, g2) 0.68, (C, g2) 0.52 (height 10 everywhere: IoU is 1-D)
    targets = [(0, 0, 0, 0, 10, 10), (0, 1, 3.5, 0, 8, 10)]
    preds = [(0, 0, 0.9, 0, 0, 9, 10), (0, 1, 0.8, 2, 0, 8, 10), (0, 0, 0.7, 6, 0, 8, 10)]
    matrix = confusion(preds, targets, 2)
    # A takes g1; then B takes g2 (its best target is gone); C is left over: a false positive of class 0
    assert matrix.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_ties_in_iou_go_to_the_higher_score():
    targets = [(0, 1, 0, 0, 10, 10)]
    preds = [(0, 0, 0.4, 0, 0, 10, 10), (0, 1, 0.6, 0, 0, 10, 10)]
    assert confusion(preds, targets, 2).tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_empty_inputs():
    assert confusion([], [(0, 1, 0, 0, 10, 10)], 2).tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert confusion([(0, 0, 0.9, 0, 0, 10, 10)], [], 2).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert confusion([], [], 3).shape == (4, 4)


def sequential_confusion(p, t, num_classes, conf, iou_thr):
    """The definition read literally: sort every candidate pair, take them one by one."""
    p = p[p[:, 2] >= conf]
    pairs = []
    for i, pr in enumerate(p.tolist()):
        for j, tg in enumerate(t.tolist()):
            if pr[0] != tg[0]:
                continue
            iou = _iou(pr[3:], tg[2:])
            if iou >= iou_thr:
                pairs.append((-iou, -pr[2], i, j))
    taken_p, taken_t = {}, set()
    for _, _, i, j in sorted(pairs):
        if i not in taken_p and j not in taken_t:
            taken_p[i] = j
            taken_t.add(j)
    matrix = torch.zeros(num_classes + 1, num_classes + 1, dtype=torch.long)
    for i in range(len(p)):
        col = int(t[taken_p[i], 1]) if i in taken_p else num_classes
        matrix[int(p[i, 1]), col] += 1
    for j in range(len(t)):
        if j not in taken_t:
            matrix[num_classes, int(t[j, 1])] += 1
    return matrix


def _iou(a, b):
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter > 0 else 0.0


@pytest.mark.parametrize("seed", range(5))
def test_equals_the_sequential_greedy_on_crowded_random_scenes(seed):
    g = torch.Generator().manual_seed(seed)
    num_t, num_p, num_classes = 40, 70, 3
    t = torch.cat([torch.randint(0, 3, (num_t, 1), generator=g), torch.randint(0, num_classes, (num_t, 1), generator=g),
                   torch.rand(num_t, 2, generator=g) * 60, 10 + torch.rand(num_t, 2, generator=g) * 20], 1).double()
    source = torch.randint(0, num_t, (num_p,), generator=g)
    jitter = torch.randn(num_p, 4, generator=g).double() * 3
    p = torch.cat([t[source, :1], torch.randint(0, num_classes, (num_p, 1), generator=g).double(),
                   (torch.rand(num_p, 1, generator=g) * 4).round().double() / 4, t[source, 2:] + jitter], 1)
    p[:, 5:] = p[:, 5:].clamp(min=1)
    ours = detection_confusion_matrix(p[:, 3:], p[:, 2], p[:, 1].long(), p[:, 0].long(), t[:, 2:], t[:, 1].long(),
                                      t[:, 0].long(), num_classes, conf_threshold=0.25, iou_threshold=0.5)
    assert torch.equal(ours, sequential_confusion(p, t, num_classes, 0.25, 0.5))
    assert int(ours[:, :num_classes].sum()) == num_t  # every target is counted once
