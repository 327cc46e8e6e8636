"""Inference on CPU: PyTorch eager vs ONNX Runtime float32 vs ONNX Runtime INT8, YOLOX-N and YOLOX-S.

Latency: one forward pass (decoding included, NMS excluded) on random images at 640 x 640, batch 1 and
batch 8; every engine gets the same number of threads (torch's), and the engines are timed in turns (per round,
the best of two back-to-back calls of each; the median of the rounds), so that a change of load on a shared
machine slows them alike and their ratios stay meaningful. INT8 comes in both kinds onnxruntime.quantization makes: static (QDQ, activation
ranges calibrated once on validation images, the whole network INT8: trainwright's default) and dynamic
(weights INT8, activation ranges measured on every run).

Accuracy: mAP@0.50:0.95 on the built-in validation set (the shapes dataset, 200 images) with trainwright's
metrics, at the input size the model was trained at (160: the shapes images are 160 pixels, so a 640 input
would only upscale them and measure a model outside what it learnt). The INT8 files for mAP are quantised from
an export at that size, the same way as the 640 ones. A meaningful drop needs a model that detects something:
pass a trained checkpoint (--checkpoint-n / --checkpoint-s, from `trainwright train`), otherwise each model is
trained here for --epochs (YOLOX-N, default 6: about 8 minutes on 2 idle cores) or --epochs-s (YOLOX-S, default 2:
an epoch of YOLOX-S costs about 3 of YOLOX-N; 2 epochs detect the shapes well enough for an accuracy drop to mean
something) epochs of the default recipe, and the checkpoint is kept under --workdir for the next run.

    python benchmarks/inference.py                        # both models, trained here when no checkpoint
    python benchmarks/inference.py --checkpoint-n ckpt_best.pth --models yolox_n
    python benchmarks/inference.py --quick                # a few seconds of training, 320 px, 1 repeat
    python benchmarks/inference.py --quick --models yolox_s   # the same for YOLOX-S

PyTorch runs with OpenMP's passive wait policy (threads sleep between parallel regions): two thread pools
share the cores in this process, and torch's threads spinning after its turn would slow the onnxruntime turn
that follows. On an idle machine spinning threads make eager inference faster at batch 1 (YOLOX-N at 640: 36 ms
instead of 80 ms): `OMP_WAIT_POLICY=ACTIVE python benchmarks/inference.py` times that. onnxruntime's own thread
pool spins either way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

# OpenMP reads this when torch loads it: spinning threads (libgomp's default, and trainwright's longer spin) made
# PyTorch eager 20x slower on a 2-core machine shared with other jobs and with onnxruntime's own thread pool
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from timing import cpu_description, median_interleaved

from trainwright.cli.inference import load_checkpoint_model
from trainwright.data import build_detection_loader
from trainwright.data.collate import CrowdDetectionCollateFN
from trainwright.export import OnnxDetector, export_onnx
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback
from trainwright.models.export.checks import inference_session
from trainwright.models.export.optimize import evaluate_map, quantize_int8

ENGINES = ("pytorch eager", "onnxruntime fp32", "onnxruntime int8 static", "onnxruntime int8 dynamic")


def epochs_finished(experiment_dir: Path) -> int:
    """Epochs the run in `experiment_dir` has finished, read from its ckpt_latest.pth (0 when there is none)."""
    latest = experiment_dir / "ckpt_latest.pth"
    if not latest.is_file():
        return 0
    return int(torch.load(latest, map_location="cpu", weights_only=False).get("epoch", 0))


def train_briefly(architecture: str, workdir: Path, epochs: int, quick: bool) -> Path:
    """ckpt_best.pth of a short run of the default recipe: reused when that run finished all its epochs,
    resumed when an earlier benchmark left it unfinished (interrupted), trained from scratch otherwise."""
    from trainwright.cli.train import run_train

    name = f"{architecture}_e{epochs}{'_quick' if quick else ''}"
    experiment_dir = workdir / "checkpoints" / name
    checkpoint = experiment_dir / "ckpt_best.pth"
    done = epochs_finished(experiment_dir)
    if done >= epochs and checkpoint.is_file():
        return checkpoint
    if done > 0:
        print(f"{experiment_dir}: {done} of {epochs} epochs finished; resuming", flush=True)
        if run_train([], resume_dir=str(experiment_dir)) != 0:
            raise SystemExit(f"resuming {experiment_dir} failed")
        return checkpoint
    if experiment_dir.exists():
        raise SystemExit(f"{experiment_dir} holds no finished epoch of an earlier run: delete it to train again")
    overrides = [f"ckpt_root_dir={workdir / 'checkpoints'}", f"experiment_name={name}",
                 f"model.architecture={architecture}", f"training_params.max_epochs={epochs}",
                 "visualization.freq=0", "training_params.silent_mode=true"]
    if quick:
        overrides += ["training_params.max_train_batches=2", "training_params.lr_warmup_epochs=0",
                      "dataset.max_valid_images=16"]
    if run_train(overrides) != 0:
        raise SystemExit(f"training {architecture} for the benchmark failed")
    return checkpoint


def valid_loader(cm, limit: int | None):
    from torch.utils.data import Subset

    from trainwright.data import COCODetectionDataset
    from trainwright.data.transforms import detection_val_transforms

    data = COCODetectionDataset(cm.valid_data["images_dir"], cm.valid_data["annotations_file"],
                                transforms=detection_val_transforms(cm.input_size), input_size=cm.input_size,
                                with_crowd=True)
    data = data if limit is None else Subset(data, range(min(limit, len(data))))
    return build_detection_loader(data, 16, num_workers=0, collate_fn=CrowdDetectionCollateFN(), device="cpu")


def calibration_batches(loader, count: int = 4, size: tuple[int, int] | None = None) -> list[torch.Tensor]:
    """Image batches of a loader, resized to `size` when given (for the 640 latency files)."""
    batches = []
    for batch in loader:
        images = batch[0].float()
        if size is not None and tuple(images.shape[-2:]) != size:
            images = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
        batches.append(images)
        if len(batches) == count:
            break
    return batches


def onnx_variants(model, folder: Path, size: tuple[int, int], calibration) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, folder / "fp32.onnx", size, dynamic_batch=True, overwrite=True)
    return {"onnxruntime fp32": fp32,
            "onnxruntime int8 static": quantize_int8(fp32, folder / "int8_static.onnx", "static", calibration),
            "onnxruntime int8 dynamic": quantize_int8(fp32, folder / "int8_dynamic.onnx", "dynamic")}


def latencies(model, files: dict[str, Path], batch: int, size: tuple[int, int], runs: int,
              threads: int) -> dict[str, float]:
    """Median ms of one forward pass of each engine on a random batch [batch, 3, H, W], engines timed in turns."""
    images = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
    array = images.numpy()
    sessions = {engine: inference_session(path, threads=threads) for engine, path in files.items()}

    def eager():
        with torch.inference_mode():
            model(images)

    runners = {"pytorch eager": eager}
    runners.update({engine: (lambda s=session: s.run(None, {s.get_inputs()[0].name: array}))
                    for engine, session in sessions.items()})
    return median_interleaved(runners, runs, warmup=1, calls=2)


def benchmark(architecture: str, checkpoint: Path, args) -> list[dict]:
    cm = load_checkpoint_model(str(checkpoint), device="cpu")
    threads = torch.get_num_threads()
    latency_size = (args.size, args.size)
    loader = valid_loader(cm, args.valid_images)
    calibration = calibration_batches(loader)
    work = args.workdir / "onnx" / f"{architecture}_{checkpoint.parent.name}"
    # ranges calibrated at 640 on one batch: calibration keeps every activation of a batch in memory
    latency_files = onnx_variants(cm.model, work / f"{args.size}", latency_size,
                                  calibration_batches(loader, count=1, size=latency_size))
    map_files = onnx_variants(cm.model, work / f"{cm.input_size[0]}", cm.input_size, calibration)
    settings = {"conf": 0.001, "iou": cm.postprocess.get("iou", 0.6), "max_predictions": 100}
    timed = {batch: latencies(cm.model, latency_files, batch, latency_size, args.runs, threads) for batch in (1, 8)}
    rows = []
    for engine in ENGINES:
        row = {"model": architecture, "engine": engine, "b1": timed[1][engine], "b8": timed[8][engine]}
        if engine == "pytorch eager":
            post = YoloXPostPredictionCallback(**settings)
            with torch.inference_mode():
                row["map"] = evaluate_map(cm.model, post, loader, len(cm.class_names))["mAP@0.50:0.95"]
        else:
            detector = OnnxDetector(map_files[engine], threads=threads)
            post = detector.post_prediction_callback(**settings)
            row["map"] = evaluate_map(detector.model, post, loader, len(cm.class_names))["mAP@0.50:0.95"]
        rows.append(row)
        print(f"  {architecture:<8} {engine:<26} b1 {row['b1']:8.1f} ms  b8 {row['b8']:8.1f} ms  "
              f"mAP {100 * row['map']:.2f}", flush=True)
    return rows


def print_table(rows: list[dict], size: int, map_size: str) -> None:
    print(f"\nlatency at {size} x {size} (median ms, engines timed in turns; ratio to PyTorch eager), "
          f"mAP@0.50:0.95 at {map_size} (points; drop vs PyTorch)")
    print(f"{'model':<8} {'engine':<26} {'batch 1':>9} {'ratio':>6} {'batch 8':>9} {'ratio':>6} {'mAP':>6} "
          f"{'drop':>6}")
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["engine"] == "pytorch eager")
        print(f"{row['model']:<8} {row['engine']:<26} {row['b1']:9.1f} {row['b1'] / base['b1']:6.2f} "
              f"{row['b8']:9.1f} {row['b8'] / base['b8']:6.2f} {100 * row['map']:6.2f} "
              f"{100 * (base['map'] - row['map']):6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["yolox_n", "yolox_s"], choices=["yolox_n", "yolox_s"])
    parser.add_argument("--checkpoint-n", type=Path, default=None, help="trained YOLOX-N checkpoint")
    parser.add_argument("--checkpoint-s", type=Path, default=None, help="trained YOLOX-S checkpoint")
    parser.add_argument("--epochs", type=int, default=6, help="YOLOX-N training epochs when no checkpoint is given")
    parser.add_argument("--epochs-s", type=int, default=2, help="YOLOX-S training epochs when no checkpoint is given")
    parser.add_argument("--runs", type=int, default=5, help="timed repeats per latency")
    parser.add_argument("--size", type=int, default=640, help="latency input size")
    parser.add_argument("--valid-images", type=int, default=None, help="validate on the first N images only")
    parser.add_argument("--workdir", type=Path, default=Path("benchmark_runs/inference"))
    parser.add_argument("--quick", action="store_true",
                        help="barely trained, 320 px, 1 repeat (YOLOX-N unless --models says otherwise)")
    args = parser.parse_args()
    if args.quick:
        chosen = "--models" in sys.argv
        args.models = args.models if chosen else ["yolox_n"]
        args.epochs = args.epochs_s = 1
        args.runs, args.size, args.valid_images = 1, 320, 16
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    rows = []
    for architecture in args.models:
        given = args.checkpoint_n if architecture == "yolox_n" else args.checkpoint_s
        epochs = args.epochs if architecture == "yolox_n" else args.epochs_s
        checkpoint = given or train_briefly(architecture, args.workdir, epochs, args.quick)
        print(f"{architecture}: {checkpoint}", flush=True)
        rows += benchmark(architecture, checkpoint, args)
    print_table(rows, args.size, "the training size")
    print(f"\n{torch.get_num_threads()} threads per engine on {cpu_description()}, PyTorch with "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
