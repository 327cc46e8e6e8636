import os

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from trainwright.data import COCODetectionDataset, CrowdDetectionCollateFN, DetectionDataset, build_detection_loader
from trainwright.data.loaders import default_num_workers
from trainwright.data.sample import DetectionSample
from trainwright.data.transforms import DetectionTransform, Mosaic
from trainwright.training.data_order import set_epoch_order


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
    assert build_detection_loader(dataset, 2, num_workers=2).persistent_workers
    assert build_detection_loader(Subset(dataset, [0, 1]), 2, num_workers=1).persistent_workers
    assert not build_detection_loader(dataset, 2, num_workers=2, persistent_workers=False).persistent_workers
    assert not build_detection_loader(dataset, 2, num_workers=0).persistent_workers
    # a dataset without per-epoch worker seeds gets fresh workers every epoch, as torch does by default
    assert not build_detection_loader(TensorDataset(torch.zeros(4)), 2, num_workers=1).persistent_workers
    assert build_detection_loader(dataset, 2).num_workers == default_num_workers()
    with pytest.raises(ValueError, match="batch_size"):
        build_detection_loader(dataset, 0)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"num_workers must be an int >= 0 or None, got {bad!r}"):
            build_detection_loader(dataset, 2, num_workers=bad)


def test_default_workers_follow_the_cpus():
    assert [default_num_workers(c) for c in (1, 2, 3, 4, 8, 16, 64)] == [0, 0, 1, 2, 4, 8, 8]


class WorkerFacts(DetectionTransform):
    """Writes the worker's pid and its torch and OpenCV thread counts into the image."""

    def __call__(self, sample, rng):
        image = np.zeros((2, 2, 3), np.float32)
        image[0, 0] = os.getpid(), torch.get_num_threads(), cv2.getNumThreads()
        return sample.replaced(image, sample.boxes)


def facts(loader):
    """[items, 3]: (pid, torch threads, OpenCV threads) of the worker that made each item of one epoch."""
    return torch.cat([images[:, :, 0, 0] for images, _ in loader]).long()


def test_workers_run_on_one_thread_and_live_across_epochs():
    loader = build_detection_loader(Blank([WorkerFacts()]), batch_size=2, num_workers=2, seed=0)
    first, second = facts(loader), facts(loader)
    assert first[:, 1:].eq(1).all(), "torch and OpenCV must run on one thread in a worker"
    assert len(set(first[:, 0].tolist())) == 2 and os.getpid() not in first[:, 0].tolist()
    assert torch.equal(first[:, 0], second[:, 0]), "persistent workers: the same processes every epoch"
    fresh = build_detection_loader(Blank([WorkerFacts()]), batch_size=2, num_workers=2, persistent_workers=False)
    assert set(facts(fresh)[:, 0].tolist()).isdisjoint(facts(fresh)[:, 0].tolist())


class InitFacts(DetectionTransform):
    """Writes what the caller's worker_init_fn saw (torch and OpenCV threads) into the image."""

    def __call__(self, sample, rng):
        image = np.zeros((2, 2, 3), np.float32)
        image[0, 0] = int(os.environ.get("SEEN_WORKER_ID", -1)), *map(int, os.environ["SEEN_THREADS"].split())
        return sample.replaced(image, sample.boxes)


def record_threads(worker_id):
    os.environ["SEEN_WORKER_ID"] = str(worker_id)
    os.environ["SEEN_THREADS"] = f"{torch.get_num_threads()} {cv2.getNumThreads()}"


def test_callers_worker_init_fn_runs_after_the_loader_settings():
    loader = build_detection_loader(Blank([InitFacts()]), batch_size=2, num_workers=1, seed=0,
                                    worker_init_fn=record_threads)
    seen = facts(loader)
    assert seen[:, 0].eq(0).all(), "the caller's worker_init_fn must run in the worker"
    assert seen[:, 1:].eq(1).all(), "it runs once torch and OpenCV are on one thread"
    assert "SEEN_THREADS" not in os.environ


def epoch_draws(loader, seed, epoch):
    set_epoch_order(loader, seed, epoch)
    return draws(loader)


def test_persistent_workers_draw_per_epoch_as_fresh_ones_would():
    """What a resumed run relies on: epoch k's augmentations depend on (seed, k) only, not on earlier epochs."""
    make = lambda: build_detection_loader(Blank([Probe()]), batch_size=2, shuffle=True, num_workers=2, seed=0)  # noqa: E731
    running = make()
    epochs = [epoch_draws(running, 7, k) for k in range(3)]
    resumed = make()
    assert torch.equal(epoch_draws(resumed, 7, 2), epochs[2])
    assert torch.equal(epoch_draws(resumed, 7, 1), epochs[1])
    assert not torch.equal(epochs[1], epochs[2])
    fresh = build_detection_loader(Blank([Probe()]), batch_size=2, shuffle=True, num_workers=2, seed=0,
                                   persistent_workers=False)
    assert not torch.equal(epoch_draws(fresh, 7, 2), epochs[1])


def test_mosaic_switch_restarts_persistent_workers_once(tiny_coco):
    dataset = COCODetectionDataset(*tiny_coco, input_size=(48, 64), transforms=[Mosaic((48, 64)), WorkerFacts()])
    loader = build_detection_loader(dataset, batch_size=3, num_workers=1, seed=0)
    before = facts(loader)[0, 0]
    assert facts(loader)[0, 0] == before
    dataset.set_mosaic_enabled(False)
    after = facts(loader)[0, 0]
    assert after != before and facts(loader)[0, 0] == after


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


_FORK_AFTER_OPENCV_THREADS = """
import cv2, numpy as np, torch
from torch.utils.data import TensorDataset
from trainwright.data import build_detection_loader
image = np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), dtype=np.uint8)
for _ in range(3):  # starts OpenCV's thread pool in this process
    cv2.GaussianBlur(cv2.resize(image, (900, 900)), (7, 7), 0)
loader = build_detection_loader(TensorDataset(torch.zeros(8, 3)), 2, num_workers=2, collate_fn=torch.utils.data.default_collate)
print(sum(1 for _ in loader), "batches")
"""


def test_workers_start_after_the_process_used_opencv_threads():
    # Forked while OpenCV's pool ran, a worker setting OpenCV to one thread used to wait forever.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FORK_AFTER_OPENCV_THREADS], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4 batches"
