"""Image preparation for evaluate/predict and the mapping of boxes back to the original image."""

import numpy as np
import torch

from trainwright.cli.inference import CheckpointModel, checkpoint_postprocess, prepare_image, to_original_pixels
from trainwright.cli.predict_sources import unique_stems
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback


def test_prepare_image_fits_and_pads_bottom_right():
    image = np.full((100, 200, 3), 50, np.uint8)
    tensor = prepare_image(image, (64, 64))
    assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.float32
    assert torch.all(tensor[:, :32] == 50) and torch.all(tensor[:, 32:] == 114)


def test_boxes_map_back_to_original_pixels_and_are_clipped():
    boxes = torch.tensor([[0.0, 0.0, 64.0, 32.0], [16.0, 8.0, 32.0, 16.0], [-5.0, 0.0, 70.0, 40.0]])
    out = to_original_pixels(boxes, 100, 200, (64, 64))
    expected = torch.tensor([[0.0, 0.0, 200.0, 100.0], [50.0, 25.0, 100.0, 50.0], [0.0, 0.0, 200.0, 100.0]])
    torch.testing.assert_close(out, expected)


def test_a_drawn_square_lands_on_its_box_through_prepare_and_back():
    image = np.zeros((90, 120, 3), np.uint8)
    image[30:60, 40:100] = 255  # x 40..100, y 30..60
    tensor = prepare_image(image, (64, 64))
    ys, xs = torch.nonzero(tensor[0] > 127, as_tuple=True)
    box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
    torch.testing.assert_close(to_original_pixels(box, 90, 120, (64, 64)), torch.tensor([[40.0, 30, 100, 60]]),
                               atol=2.0, rtol=0)


def test_output_stems_never_collide_and_stay_plain_names():
    assert unique_stems(["a/x.png", "b/x.jpg", "y.png", "c/X.png"]) == ["x", "x_2", "y", "X_3"]
    assert unique_stems(["x.png", "d/x.png", "x_2.png"]) == ["x", "x_2", "x_2_2"]
    # a backslash, a colon and a newline become "_"; "." alone would name the folder itself
    assert unique_stems(["a/..png", "b/.png.jpg", "c/we\\ird:na\nme.jpg"]) == ["_.", ".png", "we_ird_na_me"]


def test_nms_settings_come_from_the_flag_then_the_checkpoint_then_the_class_default():
    cm = CheckpointModel(model=None, class_names=["a"], category_ids=[1], input_size=(64, 64), valid_data=None,
                         postprocess={"conf": 0.01, "iou": 0.65}, visualization_conf=0.4, device=torch.device("cpu"))
    post = checkpoint_postprocess(cm, conf=None, iou=0.5)
    default = YoloXPostPredictionCallback()
    assert (post.conf, post.iou) == (0.01, 0.5)  # conf from the checkpoint, iou from the flag
    assert (post.max_predictions, post.nms_top_k) == (default.max_predictions, default.nms_top_k)
