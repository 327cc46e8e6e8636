import numpy as np
import pytest
import torch

from trainwright.callbacks.base import Phase, PhaseContext
from trainwright.callbacks.visualization import DetectionVisualizationCallback


class Recorder:
    def __init__(self):
        self.calls = []

    def add_images(self, tag, images, data_format="NCHW", global_step=None):
        self.calls.append((tag, images, data_format, global_step))


def identity_post(preds, device=None):
    return preds


def _context(epoch, batch_idx, logger, ckpt_dir=None):
    images = torch.zeros(3, 3, 32, 48)
    images[:, 0] = 200  # red in RGB
    preds = [torch.tensor([[4.0, 4, 20, 20, 0.8, 0]]), None, None]
    targets = torch.tensor([[2, 1, 10, 10, 8, 8.0]])
    return PhaseContext(epoch=epoch, batch_idx=batch_idx, inputs=images, preds=preds, target=targets,
                        sg_logger=logger, device="cpu", checkpoints_dir_path=ckpt_dir)


def test_logs_every_freq_epochs_on_its_batch_only():
    logger = Recorder()
    cb = DetectionVisualizationCallback(Phase.VALIDATION_BATCH_END, freq=2, post_prediction_callback=identity_post,
                                        classes=["x", "y"], batch_idx=1)
    for epoch in range(4):
        for batch_idx in range(3):
            cb.on_validation_batch_end(_context(epoch, batch_idx, logger))
    assert [c[3] for c in logger.calls] == [1, 3]  # TensorBoard steps: 1-based epochs
    tag, images, data_format, _ = logger.calls[0]
    assert tag == "VALIDATION_BATCH_END_detection_batch_1" and data_format == "NHWC"
    assert images.shape == (3, 32, 48, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[1, 30, 40], [200, 0, 0])  # RGB again for the logger


def test_last_img_idx_and_saved_images(tmp_path):
    logger = Recorder()
    cb = DetectionVisualizationCallback("VALIDATION_BATCH_END", 1, identity_post, ["x", "y"], last_img_idx_in_batch=2,
                                        save_images=True)
    cb(_context(3, 0, logger, str(tmp_path)))
    assert logger.calls[0][1].shape == (2, 32, 48, 3)
    assert sorted(p.name for p in (tmp_path / "visualizations").iterdir()) == ["epoch_004_0.jpg", "epoch_004_1.jpg"]


def test_other_phases_do_not_fire():
    logger = Recorder()
    cb = DetectionVisualizationCallback(Phase.VALIDATION_BATCH_END, 1, identity_post, ["x"])
    cb.on_train_batch_loss_end(_context(0, 0, logger))
    assert logger.calls == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="freq"):
        DetectionVisualizationCallback(Phase.VALIDATION_BATCH_END, 0, identity_post, ["x"])
    with pytest.raises(ValueError, match="last_img_idx_in_batch"):
        DetectionVisualizationCallback(Phase.VALIDATION_BATCH_END, 1, identity_post, ["x"], last_img_idx_in_batch=0)


class FailingLogger(Recorder):
    def add_images(self, tag, images, data_format="NCHW", global_step=None):
        raise OSError("No space left on device")


def test_huge_and_infinite_predicted_boxes_are_drawn_clipped(tmp_path):
    """An untrained or diverged model predicts boxes far beyond int32 (or inf): the drawing must not fail."""
    cb = DetectionVisualizationCallback("VALIDATION_BATCH_END", 1, identity_post, ["x", "y"], save_images=True)
    context = _context(0, 0, Recorder(), str(tmp_path))
    context.preds = [torch.tensor([[-1e12, -1e12, 1e12, 1e12, 0.9, 0], [4.0, 4, float("inf"), 20, 0.8, 1],
                                   [float("nan"), 1, 2, 3, 0.7, 0], [5.0, 5, 9, 9, float("nan"), 1]]), None, None]
    cb(context)
    assert cb.drawing_output.failures == 0
    assert sorted(p.name for p in (tmp_path / "visualizations").iterdir()) == [f"epoch_001_{i}.jpg" for i in range(3)]


def test_a_failing_tensorboard_write_is_logged_once_and_the_jpegs_still_written(tmp_path, caplog):
    cb = DetectionVisualizationCallback("VALIDATION_BATCH_END", 1, identity_post, ["x", "y"], save_images=True)
    with caplog.at_level("WARNING", logger="trainwright"):
        for epoch in range(2):
            cb(_context(epoch, 0, FailingLogger(), str(tmp_path)))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "TensorBoard images" in warnings[0] and "No space left on device" in warnings[0]
    assert len(list((tmp_path / "visualizations").iterdir())) == 6 and cb.tensorboard_output.failures == 2
