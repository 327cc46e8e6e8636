import numpy as np
import pytest
import torch

from trainwright.data import COCODetectionDataset, CrowdDetectionCollateFN, DetectionDataset, build_detection_loader
from trainwright.data.sample import DetectionSample
from trainwright.data.transforms import DetectionTransform, Mosaic


class Probe(DetectionTransform):
    """Writes one draw of the dataset generator and one of numpy's global generator into the image."""

    def __call__(self, sample, rng):
        image = np.zeros((2, 2, 3), np.float32)
        image[0, 0, 0], image[0, 0, 1] = rng.random(), np.random.random()
        return sample.replaced(image, sample.boxes)


class Blank(DetectionDataset):
    def __len__(self):
        return 8

    def load_raw(self, index):
        return DetectionSample(np.zeros((2, 2, 3), np.uint8), [[0, 0, 1, 1]], [index % 3], [False])


def draws(loader):
    """[batches, batch size, 2]: the draws of each item, epoch after epoch."""
    return torch.stack([images[:, :2, 0, 0] for images, _ in loader])


def test_workers_are_seeded_apart_and_reproducibly():
    loader = build_detection_loader(Blank([Probe()]), batch_size=1, num_workers=2, seed=0)
    first = draws(loader)
    # items 0, 2, 4, 6 come from worker 0 and 1, 3, 5, 7 from worker 1: their streams must differ
    assert not torch.equal(first[0::2], first[1::2])
    assert len(torch.unique(first[:, 0, 0])) == 8 and len(torch.unique(first[:, 0, 1])) == 8
    assert torch.equal(first, draws(build_detection_loader(Blank([Probe()]), batch_size=1, num_workers=2, seed=0)))
    assert not torch.equal(first, draws(loader))  # the next epoch draws anew
    assert not torch.equal(first, draws(build_detection_loader(Blank([Probe()]), batch_size=1, num_workers=2, seed=1)))


def test_main_process_generator_follows_dataset_seed():
    a = draws(build_detection_loader(Blank([Probe()], seed=5), batch_size=4, num_workers=0))
    b = draws(build_detection_loader(Blank([Probe()], seed=5), batch_size=4, num_workers=0))
    c = draws(build_detection_loader(Blank([Probe()], seed=6), batch_size=4, num_workers=0))
    assert torch.equal(a[..., 0], b[..., 0]) and not torch.equal(a[..., 0], c[..., 0])


def test_mosaic_switch_reaches_the_workers(tiny_coco):
    dataset = COCODetectionDataset(*tiny_coco, input_size=(48, 64), transforms=[Mosaic((48, 64))])
    loader = build_detection_loader(dataset, batch_size=3, num_workers=2, seed=0)
    assert dataset.mosaic_enabled
    assert next(iter(loader))[0].shape == (3, 3, 96, 128)
    dataset.set_mosaic_enabled(False)
    assert not dataset.mosaic_enabled
    assert [images.shape for images, _ in loader] == [(3, 3, 48, 64)]
    dataset.set_mosaic_enabled(True)
    assert next(iter(loader))[0].shape == (3, 3, 96, 128)


def test_crowd_loader_batches(tiny_coco):
    dataset = COCODetectionDataset(*tiny_coco, input_size=(48, 64), with_crowd=True)
    images, targets, extras = next(iter(build_detection_loader(dataset, 3, num_workers=0,
                                                               collate_fn=CrowdDetectionCollateFN())))
    assert images.shape == (3, 3, 48, 64) and targets.shape == (2, 6) and extras["crowd_targets"].shape == (1, 6)


def test_loader_options():
    dataset = Blank([Probe()])
    assert build_detection_loader(dataset, 2, num_workers=0, device="cuda").pin_memory
    assert not build_detection_loader(dataset, 2, num_workers=0, device="cpu").pin_memory
    assert not build_detection_loader(dataset, 2, num_workers=2).persistent_workers
    with pytest.raises(ValueError, match="persistent_workers"):
        build_detection_loader(dataset, 2, persistent_workers=True)
    with pytest.raises(ValueError, match="batch_size"):
        build_detection_loader(dataset, 0)


def test_additional_samples_loaded_only_for_active_transforms():
    loaded = []

    class Counting(Blank):
        def load_raw(self, index):
            loaded.append(index)
            return super().load_raw(index)

    mosaic = Mosaic((2, 2), prob=0.0)
    dataset = Counting([mosaic])
    dataset[0]
    assert loaded == [0]
    mosaic.prob = 1.0
    dataset[0]
    assert len(loaded) == 1 + 4
    dataset.set_mosaic_enabled(False)
    dataset[0]
    assert len(loaded) == 1 + 4 + 1
