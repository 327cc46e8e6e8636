"""A detection model, its loss, DetectionMetrics and callbacks through Trainer.train."""

import pytest
import torch

from trainwright import Trainer
from trainwright.callbacks.base import Callback


@pytest.mark.slow
def test_yolox_with_detection_metrics_and_stage_switch(tmp_path):
    from trainwright.callbacks.stage_switch import YoloXTrainingStageSwitchCallback
    from trainwright.metrics.detection import DetectionMetrics
    from trainwright.models import get_model
    from trainwright.models.detection.postprocess import YoloXPostPredictionCallback
    from trainwright.models.detection.yolox_loss import YoloXDetectionLoss

    class Loss(YoloXDetectionLoss):
        # Validation passes the eval-mode output (decoded, raw maps): the loss needs the raw maps.
        def forward(self, preds, targets):
            if isinstance(preds, tuple) and len(preds) == 2:
                preds = preds[1]
            return super().forward(preds, targets)

    class Mosaic(torch.utils.data.Dataset):
        mosaic = True

        def set_mosaic_enabled(self, enabled):
            self.mosaic = enabled

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.full((3, 32, 32), 100.0 * i), torch.tensor([[i, 1, 16, 16, 12, 12]], dtype=torch.float32)

    def collate(items):
        images = torch.stack([im for im, _ in items])
        targets = torch.cat([t for _, t in items])
        return images, targets, {"crowd_targets": torch.zeros(0, 6)}

    loader = torch.utils.data.DataLoader(Mosaic(), batch_size=2, collate_fn=collate)
    torch.manual_seed(0)
    model = get_model("yolox_n", num_classes=2)
    metric = DetectionMetrics(num_cls=2, post_prediction_callback=YoloXPostPredictionCallback(conf=0.001))
    seen_l1 = []

    class L1Watcher(Callback):
        def on_train_loader_start(self, ctx):
            seen_l1.append(ctx.criterion.use_l1)

    params = {
        "max_epochs": 2, "initial_lr": 0.01, "loss": Loss(num_classes=2), "valid_metrics_list": [metric],
        "metric_to_watch": "mAP@0.50:0.95", "phase_callbacks": [YoloXTrainingStageSwitchCallback(1), L1Watcher()],
        "silent_mode": True,
    }  # fmt: skip
    results = Trainer("det", "cpu", ckpt_root_dir=tmp_path).train(model, params, loader, loader)
    assert {"Loss/iou", "Loss/obj", "Loss/cls", "Loss/l1", "Loss/Loss", "mAP@0.50:0.95"} <= set(results)
    assert seen_l1 == [False, True] and loader.dataset.mosaic is False
    assert (tmp_path / "det" / "ckpt_best.pth").exists()
