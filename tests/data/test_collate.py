import cv2
import numpy as np
import pytest
import torch

from trainwright.data import (
    CrowdDetectionCollateFN,
    CrowdDetectionPPYoloECollateFN,
    DetectionCollateFN,
    PPYoloECollateFN,
)
from trainwright.data.loaders import seed_worker
from trainwright.training.data_order import set_epoch_order


def _items(with_crowd=False):
    images = [torch.full((3, 8, 10), float(i)) for i in range(3)]
    targets = [torch.tensor([[1.0, 2, 3, 4, 5], [0, 5, 4, 2, 2]]), torch.zeros((0, 5)), torch.tensor([[2.0, 5, 5, 4, 4]])]
    crowd = [torch.zeros((0, 5)), torch.tensor([[1.0, 4, 4, 2, 2]]), torch.zeros((0, 5))]
    if with_crowd:
        return [(im, t, {"crowd_targets": c}) for im, t, c in zip(images, targets, crowd)]
    return list(zip(images, targets))


def test_detection_collate_layout():
    images, targets = DetectionCollateFN()(_items())
    assert images.shape == (3, 3, 8, 10) and images.dtype == torch.float32
    assert torch.equal(images[:, 0, 0, 0], torch.tensor([0.0, 1, 2]))
    expected = torch.tensor([[0.0, 1, 2, 3, 4, 5], [0, 0, 5, 4, 2, 2], [2, 2, 5, 5, 4, 4]])
    torch.testing.assert_close(targets, expected)


def test_detection_collate_drops_zero_padding_rows_and_accepts_numpy():
    padded = np.zeros((4, 5), np.float32)
    padded[0] = [3, 4, 4, 2, 2]
    image = np.zeros((3, 8, 10), np.uint8)
    images, targets = DetectionCollateFN()([(image, padded), (image, np.zeros((4, 5), np.float32))])
    assert images.dtype == torch.float32
    torch.testing.assert_close(targets, torch.tensor([[0.0, 3, 4, 4, 2, 2]]))


def test_detection_collate_with_no_targets_at_all():
    _, targets = DetectionCollateFN()([(torch.zeros(3, 4, 4), torch.zeros((0, 5)))])
    assert targets.shape == (0, 6)


def test_collate_rejects_bad_shapes():
    with pytest.raises(ValueError, match="image must be"):
        DetectionCollateFN()([(torch.zeros(4, 4, 3), torch.zeros((0, 5)))])
    with pytest.raises(ValueError, match="targets must be"):
        DetectionCollateFN()([(torch.zeros(3, 4, 4), torch.zeros((2, 4)))])
    with pytest.raises(ValueError, match="same shape"):
        DetectionCollateFN()([(torch.zeros(3, 4, 4), torch.zeros((0, 5))), (torch.zeros(3, 4, 5), torch.zeros((0, 5)))])


def test_crowd_collate_adds_crowd_targets():
    images, targets, extras = CrowdDetectionCollateFN()(_items(with_crowd=True))
    assert images.shape == (3, 3, 8, 10) and targets.shape == (3, 6)
    torch.testing.assert_close(extras["crowd_targets"], torch.tensor([[1.0, 1, 4, 4, 2, 2]]))
    with pytest.raises(ValueError, match="crowd_targets"):
        CrowdDetectionCollateFN()(_items())


def test_ppyoloe_collate_without_sizes_is_plain_collate():
    a = PPYoloECollateFN()(_items())
    b = DetectionCollateFN()(_items())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_ppyoloe_collate_resizes_batch_and_scales_boxes():
    torch.manual_seed(0)
    collate = PPYoloECollateFN(random_resize_sizes=[16, (4, 20)], random_resize_modes=[cv2.INTER_NEAREST])
    shapes = set()
    for _ in range(20):
        images, targets = collate(_items())
        h, w = images.shape[2:]
        shapes.add((h, w))
        sx, sy = w / 10, h / 8
        torch.testing.assert_close(targets[0], torch.tensor([0.0, 1, 2 * sx, 3 * sy, 4 * sx, 5 * sy]))
        assert torch.equal(images[:, 0, 0, 0], torch.tensor([0.0, 1, 2]))
    assert shapes == {(16, 16), (4, 20)}


def test_crowd_ppyoloe_collate_scales_crowd_boxes():
    collate = CrowdDetectionPPYoloECollateFN(random_resize_sizes=[(16, 20)])
    images, targets, extras = collate(_items(with_crowd=True))
    assert images.shape == (3, 3, 16, 20)
    torch.testing.assert_close(extras["crowd_targets"], torch.tensor([[1.0, 1, 8, 8, 4, 4]]))


def test_ppyoloe_rejects_bad_sizes():
    with pytest.raises(ValueError, match="random_resize_sizes"):
        PPYoloECollateFN(random_resize_sizes=[0])


def _loader_sizes(seed: int, epoch: int, num_workers: int) -> list[tuple[int, int]]:
    """Image sizes of every batch of one epoch of a shuffled loader ordered as the Trainer orders it."""
    items = [(torch.zeros(3, 8, 8), torch.tensor([[0.0, 4, 4, 2, 2]])) for _ in range(12)]
    loader = torch.utils.data.DataLoader(items, batch_size=2, shuffle=True, num_workers=num_workers,
                                         worker_init_fn=seed_worker if num_workers else None,
                                         collate_fn=PPYoloECollateFN(random_resize_sizes=[8, 16, 24, 32, (8, 16)]))
    set_epoch_order(loader, seed, epoch)
    return [tuple(images.shape[2:]) for images, _ in loader]


def test_ppyoloe_collate_sizes_depend_only_on_seed_and_epoch_in_workers():
    torch.manual_seed(123)
    first = _loader_sizes(seed=7, epoch=3, num_workers=2)
    torch.manual_seed(456)  # whatever the main process did before: the workers' draws do not change
    assert _loader_sizes(seed=7, epoch=3, num_workers=2) == first
    assert _loader_sizes(seed=7, epoch=4, num_workers=2) != first
    assert len(set(first)) > 1


def test_ppyoloe_collate_in_the_main_process_follows_the_seeded_stream():
    torch.manual_seed(5)
    first = _loader_sizes(seed=7, epoch=3, num_workers=0)
    state = torch.get_rng_state()
    second = _loader_sizes(seed=7, epoch=4, num_workers=0)
    torch.manual_seed(5)
    assert _loader_sizes(seed=7, epoch=3, num_workers=0) == first
    torch.set_rng_state(state)  # what resume restores from the checkpoint
    assert _loader_sizes(seed=7, epoch=4, num_workers=0) == second
