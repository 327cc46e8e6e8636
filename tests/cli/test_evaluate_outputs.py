"""`trainwright evaluate` in a subprocess: per-class table, plots, --save-json, and one-line errors."""

import json
import re

import pytest
from cli_helpers import write_coco_split
from subprocess_helpers import run_trainwright, write_detecting_checkpoint

from trainwright.metrics.coco import coco_evaluate, coco_evaluation
from trainwright.metrics.per_class import per_class_metrics

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = ("ckpt_pr_curve.png", "ckpt_f1_curve.png", "ckpt_confusion_matrix.png")


@pytest.fixture(scope="module")
def dataset_and_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    images, annotations = write_coco_split(root / "data", "val", 4, seed=3)
    checkpoint = write_detecting_checkpoint(root / "run" / "ckpt.pth", ["block", "disc"], [2, 9],
                                            valid_data={"images_dir": str(images),
                                                        "annotations_file": str(annotations)})
    return root, images, annotations, checkpoint


@pytest.fixture(scope="module")
def text_run(dataset_and_checkpoint):
    """One evaluation on the checkpoint's own validation data, plots beside the checkpoint."""
    root, _, _, checkpoint = dataset_and_checkpoint
    result = run_trainwright("evaluate", checkpoint, "--save-json", root / "detections.json")
    return result, root / "detections.json"


def _printed_stat(out: str, label: str) -> float:
    line = next(line for line in out.splitlines() if label in line)
    return float(line.rsplit("=", 1)[1])


def test_text_run_prints_the_table_writes_plots_beside_the_checkpoint_and_the_json(text_run, dataset_and_checkpoint):
    result, saved = text_run
    root, _, annotations, checkpoint = dataset_and_checkpoint
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for name in PLOTS:
        assert (checkpoint.parent / name).read_bytes()[:8] == PNG, name
        assert f"wrote {checkpoint.parent / name}" in result.stdout
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == sorted(["ckpt.pth", *PLOTS])  # no temp files
    detections = json.loads(saved.read_text())
    assert detections and {"image_id", "category_id", "bbox", "score"} <= set(detections[0])
    assert {d["category_id"] for d in detections} <= {2, 9}  # the dataset's ids, not class indices
    images = {img["id"]: img for img in json.loads(annotations.read_text())["images"]}
    assert {d["image_id"] for d in detections} <= set(images)
    assert all(0 <= d["bbox"][0] and d["bbox"][0] + d["bbox"][2] <= 96 + 1e-3 for d in detections)
    # the saved detections reproduce the printed summary and the per-class table
    stats = coco_evaluate(annotations, saved)
    assert _printed_stat(result.stdout, "(AP) @[ IoU=0.50:0.95 | area=   all") == pytest.approx(stats["AP"], abs=5e-4)
    assert _printed_stat(result.stdout, "(AP) @[ IoU=0.50      | area=   all") == pytest.approx(stats["AP50"],
                                                                                           abs=5e-4)
    rows = {r["class"]: r for r in per_class_metrics(coco_evaluation(annotations, saved)).rows()}
    table = {line.split()[0]: line.split() for line in result.stdout.splitlines()
             if re.match(r"^(all|block|disc) +\d", line)}
    assert set(table) == {"all", "block", "disc"}
    for name, cells in table.items():
        images_count, targets, precision, recall, ap50, ap = cells[1:7]
        assert int(targets) == rows[name]["targets"] and int(images_count) == rows[name]["images"]
        for printed, key in ((precision, "precision"), (recall, "recall"), (ap50, "AP50"), (ap, "AP")):
            assert float(printed) == pytest.approx(rows[name][key], abs=5e-4), (name, key)
    assert table["all"][2] == "8" and table["block"][2] == "4"  # 4 blocks and 4 discs; the crowd box is no target


def test_json_run_to_an_output_folder_without_plots(text_run, dataset_and_checkpoint, tmp_path):
    root, images, annotations, checkpoint = dataset_and_checkpoint
    output = tmp_path / "new" / "plots"
    result = run_trainwright("evaluate", checkpoint, "--images", images, "--annotations", annotations, "--json",
                             "--output", output)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["num_images"] == 5 and len(summary["per_class"]) == 3
    assert summary["files"] == [str(output / name) for name in PLOTS]
    assert sorted(p.name for p in output.iterdir()) == sorted(PLOTS)
    assert summary["AP"] == pytest.approx(coco_evaluate(annotations, text_run[1])["AP"], abs=1e-9)
    quiet = run_trainwright("evaluate", checkpoint, "--json", "--no-plots", "--output", tmp_path / "none")
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["files"] == [] and not (tmp_path / "none").exists()


@pytest.mark.parametrize("case", ["output_is_a_file", "json_folder_missing", "json_is_a_folder", "json_is_the_data"])
def test_bad_output_paths_are_one_line_errors_and_write_nothing(case, dataset_and_checkpoint, tmp_path):
    _, images, annotations, checkpoint = dataset_and_checkpoint
    annotations_before = annotations.read_bytes()
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    args, named = {
        "output_is_a_file": (["--output", a_file / "sub", "--save-json", tmp_path / "d.json"], str(a_file)),
        "json_folder_missing": (["--save-json", tmp_path / "missing" / "d.json"], str(tmp_path / "missing")),
        "json_is_a_folder": (["--save-json", tmp_path], str(tmp_path)),
        "json_is_the_data": (["--images", images, "--annotations", annotations, "--save-json", annotations],
                             f"would overwrite the input {annotations}"),
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_trainwright("evaluate", checkpoint, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and named in result.stderr
    assert result.stderr.startswith("trainwright evaluate: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and a_file.read_text() == "keep me"
    assert annotations.read_bytes() == annotations_before
