"""The NMS demonstration: synthetic YOLOX output, our NMS vs the torchvision pipeline."""

import torch

from trainwright.cli.demo import run_demo, same_detections, synthetic_yolox_output, torchvision_pipeline
from trainwright.ops.nms import non_max_suppression


def test_synthetic_output_looks_like_a_trained_yolox():
    raw = synthetic_yolox_output(batch_size=2, num_classes=80, objects_per_image=30)
    assert raw.shape == (2, 8400, 85)
    assert ((raw[..., 4:] >= 0) & (raw[..., 4:] <= 1)).all()
    confident = (raw[..., 4] > 0.5).sum(dim=1)
    assert ((confident > 100) & (confident < 3000)).all()  # a few dozen anchors per object, not the whole grid
    assert torch.equal(raw, synthetic_yolox_output(batch_size=2))  # seeded


def test_same_detections_compares_rows_regardless_of_order():
    a = torch.tensor([[0.0, 0, 1, 1, 0.9, 0], [2, 2, 3, 3, 0.8, 1]])
    assert same_detections([a, None], [a.flip(0), torch.zeros(0, 6)])
    assert not same_detections([a], [a[:1]])
    assert not same_detections([a], [None])


def test_pipelines_agree_and_demo_runs(capsys):
    raw = synthetic_yolox_output(batch_size=2, seed=1)
    ours = non_max_suppression(raw, 0.01, 0.6, with_confidence=True)
    assert same_detections(ours, torchvision_pipeline(raw, 0.01, 0.6))
    assert run_demo() == 0
    printed = capsys.readouterr().out
    assert "identical to torchvision batched_nms: True" in printed and "ratio" in printed
