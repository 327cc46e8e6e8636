"""The files `trainwright predict` writes: drawn images in the input's format, annotated videos, YOLO-format
label text files and COCO result records."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from trainwright.visualization.detection import DetectionVisualization, undo_image_preprocessing

__all__ = ["draw", "encode_image", "yolo_label_text", "coco_records", "VideoOutput"]


def draw(image: np.ndarray, rows: Tensor, class_names: list[str]) -> np.ndarray:
    """uint8 RGB [H, W, 3] with detections [n, 6] in its pixels -> uint8 BGR [H, W, 3] with labelled boxes."""
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    return DetectionVisualization.visualize_batch(
        tensor, [rows], None, "prediction", class_names,
        undo_preprocessing_func=lambda t: undo_image_preprocessing(t, scale=1.0))[0]


def encode_image(image_bgr: np.ndarray, extension: str) -> bytes:
    """The image encoded in the format of `extension` (e.g. ".png")."""
    ok, encoded = cv2.imencode(extension, image_bgr)
    if not ok:
        raise ValueError(f"could not encode the drawing as {extension}")
    return encoded.tobytes()


def yolo_label_text(rows: Tensor, height: int, width: int) -> str:
    """One line per detection: `class cx cy w h score`, box normalised by the image width and height."""
    if rows.numel() == 0:
        return ""
    scale = rows.new_tensor([width, height, width, height])
    xyxy = rows[:, :4] / scale
    cxcywh = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], dim=1)
    return "".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f} {s:.6f}\n"
                   for (x, y, w, h), s, c in zip(cxcywh.tolist(), rows[:, 4].tolist(), rows[:, 5].tolist()))


def coco_records(rows: Tensor, image_id: int, category_ids: list[int], file_name: str,
                 frame: int | None = None) -> list[dict]:
    """COCO result dicts (image_id, category_id, bbox x y w h in pixels, score) plus file_name (and frame)."""
    extra = {"file_name": file_name} if frame is None else {"file_name": file_name, "frame": frame}
    xywh = torch.cat([rows[:, :2], rows[:, 2:4] - rows[:, :2]], dim=1)
    return [{"image_id": image_id, "category_id": category_ids[int(c)], "bbox": [round(v, 3) for v in box],
             "score": round(s, 5), **extra}
            for box, s, c in zip(xywh.tolist(), rows[:, 4].tolist(), rows[:, 5].tolist())]


class VideoOutput:
    """An mp4 (mp4v) video written to a temporary file beside `path` and renamed onto it by `commit()`.

    Used as a context manager: leaving the block without commit() (an error) deletes the temporary file.
    """

    def __init__(self, path: str, fps: float, width: int, height: int):
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp.mp4", dir=Path(path).parent)
        os.close(fd)
        self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self.writer.isOpened():
            os.unlink(self.tmp)
            raise OSError(f"cannot write video {path} (mp4v codec not available)")

    def write(self, frame_bgr: np.ndarray) -> None:
        self.writer.write(frame_bgr)

    def commit(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def __enter__(self) -> VideoOutput:
        return self

    def __exit__(self, *exc) -> None:
        self.writer.release()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
