"""PPYoloEPostPredictionCallback: the reference's filter / top-k / per-class NMS, on random and real model output."""

import pytest
import torch
import torchvision

from trainwright.models import get_model
from trainwright.models.detection.ppyoloe_postprocess import PPYoloEPostPredictionCallback


def random_predictions(batch=3, anchors=300, classes=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, anchors, 2, generator=gen) * 200
    boxes = torch.cat([xy, xy + 5 + torch.rand(batch, anchors, 2, generator=gen) * 60], -1)
    scores = torch.rand(batch, anchors, classes, generator=gen) ** 3
    return boxes, scores


def reference(boxes, scores, score_threshold, nms_threshold, nms_top_k, max_predictions, multi_label):
    """One image at a time, straight from the definition, with torchvision's batched_nms."""
    results = []
    for image_boxes, image_scores in zip(boxes, scores):
        if multi_label:
            index, classes = (image_scores > score_threshold).nonzero(as_tuple=True)
            conf = image_scores[index, classes]
        else:
            conf, classes = image_scores.max(1)
            index = (conf > score_threshold).nonzero(as_tuple=True)[0]
            conf, classes = conf[index], classes[index]
        candidate_boxes = image_boxes[index]
        if conf.numel() > nms_top_k:
            top = conf.topk(nms_top_k).indices
            candidate_boxes, conf, classes = candidate_boxes[top], conf[top], classes[top]
        keep = torchvision.ops.batched_nms(candidate_boxes, conf, classes, nms_threshold)[:max_predictions]
        rows = torch.cat([candidate_boxes[keep], conf[keep, None], classes[keep, None].float()], 1)
        results.append(rows if len(rows) else None)
    return results


@pytest.mark.parametrize("multi_label", [True, False])
@pytest.mark.parametrize("nms_top_k, max_predictions", [(1000, 300), (50, 20)])
def test_matches_the_definition(multi_label, nms_top_k, max_predictions):
    boxes, scores = random_predictions()
    callback = PPYoloEPostPredictionCallback(score_threshold=0.2, nms_threshold=0.5, nms_top_k=nms_top_k,
                                             max_predictions=max_predictions, multi_label_per_box=multi_label)
    got = callback(((boxes, scores), None))
    expected = reference(boxes, scores, 0.2, 0.5, nms_top_k, max_predictions, multi_label)
    assert len(got) == 3
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.shape[1] == 6
        torch.testing.assert_close(g, e, rtol=0, atol=1e-4)  # boxes pass through cx, cy, w, h: float rounding
    assert callback((boxes, scores), device="cpu")[0].shape == got[0].shape  # the (boxes, scores) pair alone


def test_defaults_empty_images_and_bad_input():
    callback = PPYoloEPostPredictionCallback()
    assert (callback.score_threshold, callback.nms_threshold, callback.nms_top_k, callback.max_predictions,
            callback.multi_label_per_box) == (0.01, 0.7, 1000, 300, True)
    boxes, scores = random_predictions(batch=2)
    scores[1] = 0.0  # nothing passes in the second image
    got = callback(((boxes, scores), None))
    assert got[0] is not None and got[1] is None
    with pytest.raises(ValueError, match="PP-YOLOE output must hold boxes"):
        callback((boxes[..., :3], scores))
    with pytest.raises(ValueError, match="expected PP-YOLOE eval output"):
        callback(boxes)


def test_on_the_output_of_a_model():
    torch.manual_seed(0)
    model = get_model("ppyoloe_s", 2, width_mult=0.125).eval()
    with torch.no_grad():
        for conv in model.head.pred_cls:
            conv.weight.normal_(0, 0.05)  # scores that vary over anchors
        output = model(torch.rand(2, 3, 96, 96) * 255)
    callback = model.get_post_prediction_callback(conf=0.005, iou=0.7)
    assert (callback.score_threshold, callback.nms_threshold, callback.nms_top_k) == (0.005, 0.7, 1000)
    results = PPYoloEPostPredictionCallback(score_threshold=0.005, max_predictions=7)(output)
    (boxes, scores), _ = output
    for image, rows in enumerate(results):
        assert rows is not None and rows.shape == (7, 6)
        assert torch.all(rows[:-1, 4] >= rows[1:, 4])  # decreasing scores
        # every row is one of the decoded boxes with one of its class scores
        anchor = torch.cdist(rows[:, :4], boxes[image]).argmin(1)
        torch.testing.assert_close(rows[:, :4], boxes[image, anchor], rtol=0, atol=1e-3)
        torch.testing.assert_close(rows[:, 4], scores[image, anchor, rows[:, 5].long()])
