"""NMS input types and the per-class candidate cap: TypeError for integer input; the cap changes nothing until
it is hit, then keeps each class's best candidates and warns."""

import warnings

import pytest
import torch
import torchvision

from trainwright.ops.candidate_cap import DEFAULT_MAX_CANDIDATES_PER_CLASS, top_k_per_class
from trainwright.ops.nms import matrix_non_max_suppression, non_max_suppression


def one_class_per_row(counts: list[int], seed: int = 0, canvas: float = 400.0) -> torch.Tensor:
    """Raw output [1, sum(counts), 5 + C]: counts[c] rows score above 0.1 for class c only, overlapping boxes."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    n, num_classes = labels.numel(), len(counts)
    rows = torch.zeros(n, 5 + num_classes)
    rows[:, :2] = torch.rand(n, 2, generator=gen) * canvas
    rows[:, 2:4] = 10 + torch.rand(n, 2, generator=gen) * 40
    rows[:, 4] = 1.0
    rows[torch.arange(n), 5 + labels] = 0.2 + 0.8 * torch.rand(n, generator=gen)
    return rows[None]


def torchvision_nms(raw: torch.Tensor, keep_rows: torch.Tensor | None = None) -> torch.Tensor:
    """torchvision.ops.batched_nms on the rows' (box, best class score, class), optionally on a subset of rows."""
    rows = raw[0] if keep_rows is None else raw[0, keep_rows]
    scores, classes = rows[:, 5:].max(1)
    boxes = torchvision.ops.box_convert(rows[:, :4], "cxcywh", "xyxy")
    keep = torchvision.ops.batched_nms(boxes, scores, classes, 0.6)
    return torch.cat([boxes[keep], scores[keep, None], classes[keep, None].float()], dim=1)


def best_rows_per_class(raw: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k best-scored rows of each class, picked class by class (the plain reading of the cap)."""
    scores, classes = raw[0, :, 5:].max(1)
    picked = [torch.nonzero(classes == c).flatten() for c in classes.unique()]
    return torch.cat([idx[scores[idx].argsort(descending=True)[:k]] for idx in picked])


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_input_is_a_type_error_naming_the_dtype(dtype):
    raw = (torch.rand(2, 10, 8) * 5).to(dtype)
    with pytest.raises(TypeError, match=f"prediction must be a floating-point tensor.*{dtype}"):
        non_max_suppression(raw)
    with pytest.raises(TypeError, match=rf"prediction\[1\] must be a floating-point tensor.*{dtype}"):
        non_max_suppression([torch.rand(3, 8), raw[0]])
    with pytest.raises(TypeError, match=f"pred must be a floating-point tensor.*{dtype}"):
        matrix_non_max_suppression(raw)


def test_top_k_per_class_hand_computed():
    scores = torch.tensor([0.5, 0.9, 0.7, 0.7, 0.1, 0.8, 0.7])
    classes = torch.tensor([0, 0, 0, 0, 1, 2, 0])
    # class 0: 0.9 (1), then three 0.7 (2, 3, 6): the earlier ones win the tie; classes 1 and 2 are under the cap
    assert top_k_per_class(scores, classes, 3).tolist() == [1, 2, 3, 4, 5]
    assert top_k_per_class(scores, classes, 5) is None
    assert top_k_per_class(scores[:0], classes[:0], 0) is None


def test_cap_not_hit_keeps_exactly_what_torchvision_keeps():
    raw = one_class_per_row([400, 250, 399], seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = non_max_suppression(raw, max_candidates_per_class=400)[0]
        default = non_max_suppression(raw)[0]
    expected = torchvision_nms(raw)
    assert torch.equal(ours, expected) and torch.equal(default, expected)


def test_cap_hit_keeps_the_best_candidates_of_the_crowded_class_and_warns():
    raw = one_class_per_row([500, 60, 120], seed=2)  # 400 + 20 candidates over the cap
    with pytest.warns(UserWarning, match=r"420 of 680 candidates dropped.*had 500 > max_candidates_per_class=100"):
        ours = non_max_suppression(raw, max_candidates_per_class=100)[0]
    expected = torchvision_nms(raw, best_rows_per_class(raw, 100))
    assert torch.equal(ours, expected)
    # the class under the cap is untouched: its kept boxes are those of the uncapped NMS
    uncapped = torchvision_nms(raw)
    assert torch.equal(ours[ours[:, 5] == 1], uncapped[uncapped[:, 5] == 1])


def test_default_cap_bounds_a_huge_class_and_says_so():
    raw = one_class_per_row([DEFAULT_MAX_CANDIDATES_PER_CLASS + 50], seed=3, canvas=60.0)
    with pytest.warns(UserWarning, match="max_candidates_per_class=10000"):
        ours = non_max_suppression(raw)[0]
    assert torch.equal(ours, torchvision_nms(raw, best_rows_per_class(raw, DEFAULT_MAX_CANDIDATES_PER_CLASS)))


def test_bad_cap_is_named():
    with pytest.raises(ValueError, match="max_candidates_per_class"):
        non_max_suppression(torch.rand(1, 4, 6), max_candidates_per_class=-1)
