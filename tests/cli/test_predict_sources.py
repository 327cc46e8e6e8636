"""`trainwright predict` in a subprocess: folders, globs, videos, kept formats, --save-txt, --save-json, failures."""

import json

import cv2
import numpy as np
import pytest
from subprocess_helpers import run_trainwright, write_detecting_checkpoint

pytestmark = pytest.mark.slow

CLASSES, CATEGORY_IDS = ["block", "disc"], [2, 9]


def picture(seed: int, height=48, width=72) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), rng.integers(60, 200), np.uint8)
    cv2.rectangle(image, (10, 10), (30, 40), (0, 255, 0), -1)
    return image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_detecting_checkpoint(tmp_path_factory.mktemp("model") / "ckpt.pth", CLASSES, CATEGORY_IDS)


@pytest.fixture(scope="module")
def mixed_run(checkpoint, tmp_path_factory):
    """A folder with a JPEG, a PNG, a 5-frame video, a text file and a corrupt JPEG, with every output on."""
    root = tmp_path_factory.mktemp("mixed")
    folder = root / "inputs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), picture(1))
    cv2.imwrite(str(folder / "b.png"), picture(2, 60, 40))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes((folder / "a.jpg").read_bytes()[:200])
    video = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (72, 48))
    for i in range(5):
        video.write(picture(10 + i))
    video.release()
    output = root / "out"
    result = run_trainwright("predict", checkpoint, folder, "--output", output, "--save-txt", "--save-json",
                             root / "results.json")
    return result, folder, output, root / "results.json"


def label_rows(path):
    return [list(map(float, line.split())) for line in path.read_text().splitlines()]


def test_a_bad_file_is_reported_and_the_rest_is_processed(mixed_run):
    result, folder, _, _ = mixed_run
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"note: skipped {folder / 'notes.txt'} (not an image or video file)" in result.stderr
    assert f"error: {folder / 'broken.jpg'}: cannot decode the image (corrupt or unsupported format)" in result.stderr
    assert f"1 of 4 input(s) failed: {folder / 'broken.jpg'}" in result.stderr
    assert f"{folder / 'clip.avi'}: 5 frame(s)" in result.stdout


def test_outputs_keep_the_image_format_and_the_video_is_annotated(mixed_run):
    _, _, output, _ = mixed_run
    assert sorted(p.name for p in output.iterdir()) == ["a.jpg", "b.png", "clip.mp4", "labels"]  # nothing else
    assert (output / "a.jpg").read_bytes()[:3] == b"\xff\xd8\xff" and (output / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert cv2.imread(str(output / "b.png")).shape == (60, 40, 3)
    capture = cv2.VideoCapture(str(output / "clip.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 5 and capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 72


def test_label_files_and_coco_json_agree_with_the_printed_detections(mixed_run):
    result, folder, output, saved = mixed_run
    labels = output / "labels"
    assert sorted(p.name for p in labels.iterdir()) == ["a.txt", "b.txt", "clip"]
    assert sorted(p.name for p in (labels / "clip").iterdir()) == [f"{i:06d}.txt" for i in range(5)]
    records = json.loads(saved.read_text())
    printed = {line.split(":")[0]: int(line.split(": ")[1].split()[0]) for line in result.stdout.splitlines()
               if line.startswith(str(folder)) and "detection(s) ->" in line and "frame(s)" not in line}
    for name, width, height in (("a", 72, 48), ("b", 40, 60)):
        rows = label_rows(labels / f"{name}.txt")
        mine = [r for r in records if r["file_name"].endswith(f"{name}.jpg" if name == "a" else f"{name}.png")]
        assert len(rows) == len(mine) == printed[str(folder / (name + (".jpg" if name == "a" else ".png")))] > 0
        for row, record in zip(rows, mine):  # same order: by decreasing score
            cls, cx, cy, w, h, score = row
            assert all(0.0 <= v <= 1.0 for v in (cx, cy, w, h))
            assert CATEGORY_IDS[int(cls)] == record["category_id"] and score == pytest.approx(record["score"], abs=1e-5)
            x, y, bw, bh = record["bbox"]
            assert (x + bw / 2) / width == pytest.approx(cx, abs=1e-4) and bh / height == pytest.approx(h, abs=1e-4)
    frames = [r for r in records if "frame" in r]
    assert {r["frame"] for r in frames} == set(range(5)) and all(r["file_name"].endswith("clip.avi") for r in frames)
    assert len({(r["image_id"]) for r in records}) == 2 + 5  # one id per image and per frame
    assert {r["category_id"] for r in records} <= set(CATEGORY_IDS)


def test_globs_select_images_and_equal_names_stay_apart(checkpoint, tmp_path):
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "x.png"), picture(3))
        cv2.imwrite(str(tmp_path / sub / "y.jpg"), picture(4))
    output = tmp_path / "out"
    result = run_trainwright("predict", checkpoint, str(tmp_path / "*" / "x.png"), "--output", output,
                             "--save-json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in output.iterdir()) == ["x.png", "x_2.png"]
    assert "Traceback" not in result.stderr and "wrote" in result.stdout


def test_missing_input_and_bad_or_overwriting_output_are_one_line_errors(checkpoint, tmp_path):
    result = run_trainwright("predict", checkpoint, tmp_path / "nope.png", str(tmp_path / "*.jpg"),
                             "--output", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'nope.png'}, {tmp_path / '*.jpg'}" in result.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "a.png").write_bytes(b"")
    result = run_trainwright("predict", checkpoint, tmp_path / "a.png", "--output", tmp_path / "a.png")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--output must be a folder, but {tmp_path / 'a.png'} is a file" in result.stderr
    assert (tmp_path / "a.png").read_bytes() == b""
    cv2.imwrite(str(tmp_path / "c.png"), picture(5))
    original = (tmp_path / "c.png").read_bytes()
    result = run_trainwright("predict", checkpoint, tmp_path / "c.png", "--output", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--output {tmp_path / 'c.png'} would overwrite the input {tmp_path / 'c.png'}" in result.stderr
    assert (tmp_path / "c.png").read_bytes() == original
