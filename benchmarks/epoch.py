"""Training throughput end to end: epochs of the Trainer with 0, 1, 2 and the default number of loader workers.

Each setting trains in a fresh process (with OpenMP's own wait policy, as under `trainwright train`: libgomp's
threads spin briefly, then sleep) and reports the wall time per epoch and the CPU time of the process and its
workers (user, sys), on two datasets:
  * shapes: the default recipe's data, model and batch size (YOLOX-N, 160x160, images cached, no mosaic);
  * jpeg: a COCO-format set of 640x480 JPEGs generated here, read from disk, through the `coco_yolox`
    recipe's augmentation (mosaic, affine, HSV, flip) with YOLOX-N at 320, batch 8.
"previous" is the loader before worker settings were tuned (2 fresh workers every epoch, each with
OpenCV's default thread pool), for comparison. The "default/..." settings are the default with one suspect of
system CPU changed: "no-reuse" returns freed memory to the system after each step; "omp-passive" lets OpenMP
threads sleep as soon as they wait (OMP_WAIT_POLICY=PASSIVE, what `trainwright train` set before);
"omp-spin" spins for as long as they wait (ACTIVE). Validation is
limited to one batch. The ratio is the wall time over the best wall time of the dataset's settings; each
round runs the settings in turn, in the opposite order from the round before, and the best of the rounds is
kept. `--settings NAME` (repeatable) runs only those settings.

    python benchmarks/epoch.py              # both datasets, 2 repeats (about 15 minutes on 2 quiet cores)
    python benchmarks/epoch.py --quick      # a few batches, one repeat, without "previous"
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("0", "1", "2", "default", "default/no-reuse", "default/omp-passive", "default/omp-spin", "previous")
# Suspects toggled one at a time on the default setting: freed memory returned to the system after every step
# (training parameter cpu_memory_reuse=false) and OpenMP threads spinning while they wait (OMP_WAIT_POLICY=ACTIVE).
TOGGLES = {"default/no-reuse": ["training_params.cpu_memory_reuse=false"]}
# OpenMP wait policy of a setting's process; unlisted: none set, OpenMP's own default, as under `trainwright train`
OMP_WAIT_POLICIES = {"default/omp-passive": "PASSIVE", "default/omp-spin": "ACTIVE"}


def write_jpeg_coco(root: Path, num_train: int, num_val: int) -> dict:
    """640x480 JPEGs of shapes on textured backgrounds with COCO annotations -> the recipe's dataset keys."""
    import cv2
    import numpy as np

    from trainwright.data.shapes import SHAPE_CLASSES, ShapesConfig, render_image

    config = ShapesConfig(image_size=640, max_objects=10, min_object_size=32, max_object_size=200)
    keys = {}
    for split, count in (("train", num_train), ("val", num_val)):
        folder = root / "images" / split
        folder.mkdir(parents=True)
        images, annotations = [], []
        for i in range(count):
            image, boxes, classes = render_image(np.random.default_rng([split == "val", i]), config)
            image, inside = image[:480], boxes[:, 3] < 480  # 640x480, the shapes that fit
            cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            images.append({"id": i + 1, "file_name": f"{i:05d}.jpg", "width": 640, "height": 480})
            for (x1, y1, x2, y2), cls in zip(boxes[inside].tolist(), classes[inside].tolist()):
                w, h = x2 - x1 + 1, y2 - y1 + 1
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls + 1,
                                    "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
        annotations_file = root / f"instances_{split}.json"
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(SHAPE_CLASSES)]
        annotations_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                                "categories": categories}))
        keys.update({f"dataset.{split}_images_dir": str(folder), f"dataset.{split}_annotations": str(annotations_file)})
    return keys


def recipes(quick: bool, jpeg_root: Path) -> dict[str, tuple[str, list[str], int]]:
    """dataset name -> (recipe, overrides, epochs)."""
    jpeg_keys = write_jpeg_coco(jpeg_root, 16 if quick else 48, 4)
    # Short runs: no warmup or cooldown epochs, mosaic kept on, from scratch (coco_yolox starts from COCO weights).
    short = ["training_params.lr_warmup_epochs=0", "training_params.lr_warmup_steps=0", "training_params.lr_cooldown_epochs=0"]
    jpeg = ["model.architecture=yolox_n", "model.pretrained_weights=null", "dataset.input_size=[320,320]",
            "train_dataloader.batch_size=8", "augmentation.mosaic_off_epoch=null", *short,
            *(f"{k}={v}" for k, v in jpeg_keys.items())]
    shapes = [f"dataset.max_train_images={64 if quick else 480}", *short]
    return {"shapes": ("yolox_n_shapes", shapes, 1 if quick else 2),
            "jpeg": ("coco_yolox", jpeg, 1 if quick else 3)}


def child(spec: dict) -> None:
    """Train `spec["epochs"]` epochs with the asked loader setting; print one JSON line of measures."""
    # before torch loads
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        os.environ.pop(name, None)
    if spec["setting"] in OMP_WAIT_POLICIES:
        os.environ["OMP_WAIT_POLICY"] = OMP_WAIT_POLICIES[spec["setting"]]
    import torch
    from torch.utils.data import DataLoader

    from trainwright.data import build_detection_loader, seed_worker
    from trainwright.recipes import load_recipe
    from trainwright.recipes.detection import build_detection_run, read_detection_recipe
    from trainwright.training import Trainer

    fixed = ["training_params.max_valid_batches=1", "training_params.silent_mode=true", "visualization.freq=0",
             "valid_dataloader.num_workers=0", f"training_params.max_epochs={spec['epochs']}",
             f"ckpt_root_dir={spec['out']}", "train_dataloader.num_workers=0", *TOGGLES.get(spec["setting"], [])]
    run = build_detection_run(read_detection_recipe(load_recipe(spec["recipe"], [*spec["overrides"], *fixed])))
    loader, setting = run.train_loader, spec["setting"]
    common = {"shuffle": True, "drop_last": True, "collate_fn": loader.collate_fn}
    if setting == "previous":
        train_loader = DataLoader(loader.dataset, loader.batch_size, num_workers=2, worker_init_fn=seed_worker,
                                  generator=torch.Generator().manual_seed(42), **common)
    else:
        workers = None if setting.startswith("default") else int(setting)
        train_loader = build_detection_loader(loader.dataset, loader.batch_size, num_workers=workers, seed=42,
                                              device="cpu", **common)
    trainer = Trainer("epoch", ckpt_root_dir=spec["out"], device="cpu")
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    start = time.perf_counter()
    trainer.train(run.model, run.training_params, train_loader, run.valid_loader)
    wall = time.perf_counter() - start
    workers = train_loader.num_workers
    del trainer, train_loader, run, loader  # persistent workers end (and are counted) with their loader
    import gc

    gc.collect()
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    user = sum(a.ru_utime - b.ru_utime for a, b in zip(after, before))
    system = sum(a.ru_stime - b.ru_stime for a, b in zip(after, before))
    print(json.dumps({"wall": wall, "user": user, "sys": system, "workers": workers}))


def measure(recipe: str, overrides: list[str], epochs: int, setting: str, out: str) -> dict:
    spec = {"recipe": recipe, "overrides": overrides, "epochs": epochs, "setting": setting, "out": out}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"setting {setting} of {recipe} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few batches, one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 2, 1 with --quick)")
    parser.add_argument("--data", choices=("shapes", "jpeg"), action="append", help="only these datasets")
    parser.add_argument("--settings", choices=SETTINGS, action="append", help="only these settings")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    from trainwright.data.loaders import available_cpus, default_num_workers

    repeats = args.repeats or (1 if args.quick else 2)
    settings = args.settings or (SETTINGS[:4] if args.quick else SETTINGS)
    from timing import cpu_description

    print(f"{available_cpus()} CPUs ({cpu_description()}), default num_workers {default_num_workers()}, "
          f"load average {os.getloadavg()[0]:.1f} at start, best of {repeats}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (recipe, overrides, epochs) in recipes(args.quick, Path(tmp) / "jpeg").items():
            if args.data and name not in args.data:
                continue
            best: dict[str, dict] = {}
            for round_ in range(repeats):
                for setting in settings if round_ % 2 == 0 else settings[::-1]:
                    result = measure(recipe, overrides, epochs, setting, str(Path(tmp) / "runs"))
                    if setting not in best or result["wall"] < best[setting]["wall"]:
                        best[setting] = result
            fastest = min(r["wall"] for r in best.values())
            rows += [(name, setting, epochs, r, r["wall"] / fastest) for setting, r in best.items()]
            print(f"{name}: " + json.dumps(best), flush=True)  # kept if a later dataset fails
    header = (f"{'data':<7} {'num_workers':<22} {'epoch s':>8} {'ratio':>6} {'user s/ep':>9} {'sys s/ep':>8} "
              f"{'sys/user':>8}")
    print(header)
    print("-" * len(header))
    for name, setting, epochs, r, ratio in rows:
        label = setting.replace("default", f"default ({r['workers']})")
        print(f"{name:<7} {label:<22} {r['wall'] / epochs:>8.2f} {ratio:>6.2f} {r['user'] / epochs:>9.2f} "
              f"{r['sys'] / epochs:>8.2f} {r['sys'] / max(r['user'], 1e-9):>8.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end; ratio = epoch wall time / the best of its data; "
          "previous = 2 workers started fresh each epoch with OpenCV's own thread pool")
    return 0


if __name__ == "__main__":
    sys.exit(main())
