"""`trainwright predict CHECKPOINT SOURCE... [--output DIR --conf C --iou I --save-json FILE --save-txt]`.

Runs a model on images and videos, writes them with their detections drawn (images in their own format,
videos as mp4), optionally YOLO-format label files and COCO results, and prints the detections. An input that
cannot be read is reported and skipped; the exit status is 1 when any input failed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from trainwright.cli.detector import Detector, load_detector
from trainwright.cli.evaluation_outputs import check_not_inputs, check_output_paths
from trainwright.cli.predict_outputs import VideoOutput, coco_records, draw, encode_image, yolo_label_text
from trainwright.cli.predict_sources import Source, collect_sources
from trainwright.data.coco import read_rgb_image
from trainwright.logging import atomic_write

__all__ = ["run_predict", "LABELS_FOLDER"]

LABELS_FOLDER = "labels"
_FRAMES_PER_BATCH = 8


def run_predict(checkpoint: str, sources: list[str], output: str = "predictions", conf: float | None = None,
                iou: float | None = None, device=None, save_json: str | None = None, save_txt: bool = False) -> int:
    """Predict on every image and video `sources` name; 0 when all succeeded, 1 when any input failed."""
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise ValueError(f"--conf must be in [0, 1], got {conf}")
    if iou is not None and not 0.0 < iou <= 1.0:
        raise ValueError(f"--iou must be in (0, 1], got {iou}")
    check_output_paths(output, save_json)
    inputs, skipped = collect_sources(sources)
    for path in skipped:
        print(f"note: skipped {path} (not an image or video file)", file=sys.stderr)
    if not inputs:
        raise ValueError(f"no image or video file among {', '.join(sources)}")
    planned = [("--output", _output_path(output, source)) for source in inputs]
    check_not_inputs([*planned, ("--save-json", save_json)], [checkpoint, *(source.path for source in inputs)])
    detector = load_detector(checkpoint, conf, iou, device)
    run = _PredictRun(detector, output, save_txt, _image_ids(inputs))
    failed = []
    for source in inputs:
        try:
            if source.kind == "image":
                run.image(source)
            else:
                run.video(source)
        except (OSError, ValueError, cv2.error) as err:
            failed.append(source.path)
            message = str(err) if source.path in str(err) else f"{source.path}: {err}"
            print(f"trainwright predict: error: {message}", file=sys.stderr)
    if save_json is not None:
        data = json.dumps(run.records).encode()
        atomic_write(save_json, lambda f: f.write(data))
        print(f"wrote {len(run.records)} detection(s) to {save_json}")
    if failed:
        print(f"trainwright predict: {len(failed)} of {len(inputs)} input(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def _output_path(output: str, source: Source) -> str:
    """The drawn image (same format) or annotated video (mp4) of a source."""
    suffix = Path(source.path).suffix if source.kind == "image" else ".mp4"
    return os.path.join(output, source.stem + suffix)


def _image_ids(inputs: list[Source]) -> Iterator[int]:
    """COCO image ids: the file stems when every input is an image named by a distinct number, else 1, 2, ..."""
    stems = [Path(s.path).stem for s in inputs]
    numeric = all(s.kind == "image" and stem.isdigit() for s, stem in zip(inputs, stems))
    if numeric and len({int(stem) for stem in stems}) == len(stems):
        return iter(int(stem) for stem in stems)
    return iter(range(1, sys.maxsize))


class _PredictRun:
    """The outputs of one predict command: files under `output` and the COCO records collected."""

    def __init__(self, detector: Detector, output: str, save_txt: bool, image_ids: Iterator[int]):
        self.detector, self.output, self.save_txt, self.image_ids = detector, output, save_txt, image_ids
        self.records: list[dict] = []

    def image(self, source: Source) -> None:
        image = read_rgb_image(source.path)
        rows = self.detector([image])[0]
        target = _output_path(self.output, source)
        files = {target: encode_image(draw(image, rows, self.detector.class_names), Path(source.path).suffix)}
        if self.save_txt:
            label = os.path.join(self.output, LABELS_FOLDER, f"{source.stem}.txt")
            files[label] = yolo_label_text(rows, *image.shape[:2]).encode()
        _write_all(files)
        self.records += coco_records(rows, next(self.image_ids), self.detector.category_ids, source.path)
        print(f"{source.path}: {len(rows)} detection(s) -> {target}")
        for x1, y1, x2, y2, score, cls in rows.tolist():
            print(f"  {self.detector.class_names[int(cls)]:<14} {score:.3f}  x1 {x1:.1f}  y1 {y1:.1f}  "
                  f"x2 {x2:.1f}  y2 {y2:.1f}")

    def video(self, source: Source) -> None:
        capture = cv2.VideoCapture(source.path)
        try:
            frames = _frames(capture)
            first = next(frames)
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            target = _output_path(self.output, source)
            labels, records, count, detections = {}, [], 0, 0
            with VideoOutput(target, fps, first.shape[1], first.shape[0]) as video:
                for batch in _batches(first, frames):
                    for frame, rows in zip(batch, self.detector(batch)):
                        video.write(draw(frame, rows, self.detector.class_names))
                        if self.save_txt:
                            name = os.path.join(self.output, LABELS_FOLDER, source.stem, f"{count:06d}.txt")
                            labels[name] = yolo_label_text(rows, *frame.shape[:2]).encode()
                        records += coco_records(rows, next(self.image_ids), self.detector.category_ids,
                                                source.path, frame=count)
                        count, detections = count + 1, detections + len(rows)
                video.commit()
        finally:
            capture.release()
        _write_all(labels)
        self.records += records
        print(f"{source.path}: {count} frame(s), {detections} detection(s) -> {target}")


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """RGB frames of a capture; ValueError when it cannot be opened or has no frame."""
    if not capture.isOpened():
        raise ValueError("cannot open the video (corrupt or unsupported format)")
    ok, frame = capture.read()
    if not ok:
        raise ValueError("the video has no readable frame")
    while ok:
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        ok, frame = capture.read()


def _batches(first: np.ndarray, frames: Iterator[np.ndarray]) -> Iterator[list[np.ndarray]]:
    batch = [first]
    for frame in frames:
        if len(batch) == _FRAMES_PER_BATCH:
            yield batch
            batch = []
        batch.append(frame)
    yield batch


def _write_all(files: dict[str, bytes]) -> None:
    for path, data in files.items():
        atomic_write(path, lambda f, data=data: f.write(data))
