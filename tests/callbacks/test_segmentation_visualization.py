import numpy as np
import pytest
import torch

from trainwright.callbacks.base import Phase, PhaseContext
from trainwright.callbacks.segmentation_visualization import (
    BinarySegmentationVisualizationCallback,
    binary_segmentation_panels,
)


class Recorder:
    def __init__(self):
        self.calls = []

    def add_images(self, tag, images, data_format="NCHW", global_step=None):
        self.calls.append((tag, images, data_format, global_step))


H, W = 8, 10


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.zeros(3, 3, H, W)
    inputs[:, 1] = 150  # green in RGB
    logits = torch.randn(3, 1, H, W, generator=g)
    target = (torch.rand(3, H, W, generator=g) > 0.5).long()
    return inputs, logits, target


def _context(epoch, batch_idx, logger, preds=None, target=None):
    inputs, logits, default_target = _batch()
    return PhaseContext(epoch=epoch, batch_idx=batch_idx, inputs=inputs, sg_logger=logger,
                        preds=logits if preds is None else preds,
                        target=default_target if target is None else target)


def test_panels_show_input_prediction_and_truth():
    logger = Recorder()
    cb = BinarySegmentationVisualizationCallback(Phase.VALIDATION_BATCH_END, freq=1)
    inputs, logits, target = _batch()
    cb.on_validation_batch_end(_context(0, 0, logger))
    tag, images, data_format, step = logger.calls[0]
    assert (tag, data_format, step) == ("VALIDATION_BATCH_END_segmentation_batch_0", "NHWC", 1)  # 1-based epoch
    assert images.shape == (3, H, 3 * W, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, :, :W], np.broadcast_to([0, 150, 0], (3, H, W, 3)))
    pred_white = (torch.sigmoid(logits[:, 0]) > 0.5).numpy()
    np.testing.assert_array_equal(images[:, :, W:2 * W] == 255, np.repeat(pred_white[..., None], 3, -1))
    np.testing.assert_array_equal(images[:, :, W:2 * W] == 0, np.repeat(~pred_white[..., None], 3, -1))
    np.testing.assert_array_equal(images[:, :, 2 * W:, 0], target.numpy().astype(np.uint8) * 255)


def test_tuple_preds_channel_target_and_last_img_idx():
    logger = Recorder()
    _, logits, target = _batch()
    target = target[:, None].float()
    target[0, 0, 0, 0] = 255  # an ignore label
    cb = BinarySegmentationVisualizationCallback("VALIDATION_BATCH_END", 1, last_img_idx_in_batch=2)
    cb(_context(0, 0, logger, preds=(logits, "aux"), target=target))
    images = logger.calls[0][1]
    assert images.shape == (2, H, 3 * W, 3)
    assert images[0, 0, 2 * W, 0] == 128


def test_every_freq_epochs_on_its_batch_only():
    logger = Recorder()
    cb = BinarySegmentationVisualizationCallback(Phase.VALIDATION_BATCH_END, freq=2, batch_idx=1)
    for epoch in range(5):
        for batch_idx in range(3):
            cb.on_validation_batch_end(_context(epoch, batch_idx, logger))
        cb.on_train_batch_loss_end(_context(epoch, 1, logger))
    assert [c[3] for c in logger.calls] == [1, 3, 5]
    assert logger.calls[0][0] == "VALIDATION_BATCH_END_segmentation_batch_1"


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="freq"):
        BinarySegmentationVisualizationCallback(Phase.VALIDATION_BATCH_END, 0)
    with pytest.raises(ValueError, match="last_img_idx_in_batch"):
        BinarySegmentationVisualizationCallback(Phase.VALIDATION_BATCH_END, 1, last_img_idx_in_batch=0)
    inputs, logits, target = _batch()
    with pytest.raises(ValueError, match="preds"):
        binary_segmentation_panels(inputs, torch.zeros(3, 2, H, W), target)
    with pytest.raises(ValueError, match="target"):
        binary_segmentation_panels(inputs, logits, torch.zeros(3, H, W + 1))


def test_a_drawing_that_fails_is_logged_once_and_training_goes_on(caplog):
    cb = BinarySegmentationVisualizationCallback(Phase.VALIDATION_BATCH_END, 1)
    logger = Recorder()
    with caplog.at_level("WARNING", logger="trainwright"):
        for epoch in range(3):
            cb(_context(epoch, 0, logger, preds=torch.zeros(3, 2, H, W)))
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "segmentation drawings" in warnings[0].getMessage()
    assert "preds must be logits" in warnings[0].getMessage()
    assert logger.calls == [] and cb.drawing_output.failures == 3
