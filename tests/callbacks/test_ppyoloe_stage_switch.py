"""PPYoloETrainingStageSwitchCallback alone and in a PP-YOLOE training run with its collate, resumed or not."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from trainwright import Trainer
from trainwright.callbacks.base import Callback, CallbackHandler, Phase, PhaseContext
from trainwright.data.collate import PPYoloECollateFN
from trainwright.metrics.detection import DetectionMetrics
from trainwright.models import get_model
from trainwright.models.detection.ppyoloe_loss import PPYoloELoss
from trainwright.models.detection.ppyoloe_postprocess import PPYoloEPostPredictionCallback
from trainwright.utils import PPYoloETrainingStageSwitchCallback


def run_epochs(switch, criterion, epochs):
    handler, context = CallbackHandler([switch]), PhaseContext(criterion=criterion)
    handler.on_training_start(context)
    seen = []
    for epoch in epochs:
        context.update_context(epoch=epoch)
        handler.on_train_loader_start(context)
        seen.append(criterion.use_static_assigner)
    return seen


def test_switches_to_the_task_aligned_assigner_at_its_epoch():
    switch = PPYoloETrainingStageSwitchCallback(static_assigner_end_epoch=3)
    assert switch.phase is Phase.TRAIN_EPOCH_START and "static_assigner_end_epoch=3" in repr(switch)
    assert run_epochs(switch, PPYoloELoss(2), range(6)) == [True, True, True, False, False, False]


def test_a_run_resumed_past_the_epoch_switches_at_its_first_epoch():
    switch = PPYoloETrainingStageSwitchCallback(3)
    assert run_epochs(switch, PPYoloELoss(2), range(5, 7)) == [False, False]
    assert run_epochs(PPYoloETrainingStageSwitchCallback(3), PPYoloELoss(2), range(1, 3)) == [True, True]


def test_wrong_criterion_or_epoch_is_named():
    with pytest.raises(TypeError, match="needs a PPYoloELoss criterion.*got CrossEntropyLoss"):
        run_epochs(PPYoloETrainingStageSwitchCallback(3), torch.nn.CrossEntropyLoss(), range(1))
    with pytest.raises(ValueError, match="must be >= 0, got -1"):
        PPYoloETrainingStageSwitchCallback(-1)


class Squares(Dataset):
    """Four 64 x 64 images, each with one bright square of class i % 2 (targets in pixels)."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        image = torch.full((3, 64, 64), 40.0)
        x0, y0 = 8 + 8 * i, 12 + 4 * i
        image[:, y0:y0 + 24, x0:x0 + 24] = 220.0
        return image, torch.tensor([[float(i % 2), x0 + 12.0, y0 + 12.0, 24.0, 24.0]])


class Recorder(Callback):
    """Records the assigner stage at every epoch start and the input size of every training batch."""

    def __init__(self):
        self.static, self.sizes = {}, {}

    def on_train_loader_start(self, ctx):
        self.static[ctx.epoch] = ctx.criterion.use_static_assigner

    def on_train_batch_start(self, ctx):
        self.sizes.setdefault(ctx.epoch, []).append(tuple(ctx.inputs.shape[2:]))


class StopBeforeEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_loader_start(self, ctx):
        if ctx.epoch == self.epoch:
            raise KeyboardInterrupt


def train(tmp_path, name, callbacks, resume=False):
    torch.manual_seed(0)
    model = get_model("ppyoloe_s", 2, width_mult=0.125)
    collate = PPYoloECollateFN(random_resize_sizes=[64, 96, (64, 96)])
    train_loader = DataLoader(Squares(), batch_size=2, shuffle=True, collate_fn=collate)
    valid_loader = DataLoader(Squares(), batch_size=4, collate_fn=PPYoloECollateFN())
    metric = DetectionMetrics(2, PPYoloEPostPredictionCallback(score_threshold=0.01), normalize_targets=True)
    trainer = Trainer(name, "cpu", ckpt_root_dir=tmp_path)
    params = {"max_epochs": 4, "initial_lr": 2e-3, "optimizer": "AdamW", "loss": "ppyoloe_loss",
              "criterion_params": {"num_classes": 2}, "valid_metrics_list": [metric],
              "metric_to_watch": "mAP@0.50:0.95", "silent_mode": True, "resume": resume,
              "phase_callbacks": [PPYoloETrainingStageSwitchCallback(2), *callbacks]}
    results = trainer.train(model, params, train_loader, valid_loader)
    return trainer, results


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [2, 3])
def test_training_switches_at_the_epoch_and_resumes_identically(tmp_path, stop_at):
    straight_record = Recorder()
    straight, results = train(tmp_path, "straight", [straight_record])
    assert straight_record.static == {0: True, 1: True, 2: False, 3: False}
    assert {"PPYoloELoss/loss_cls", "PPYoloELoss/loss_iou", "PPYoloELoss/loss_dfl", "PPYoloELoss/loss",
            "mAP@0.50:0.95"} <= set(results)
    all_sizes = [size for sizes in straight_record.sizes.values() for size in sizes]
    assert len(set(all_sizes)) > 1  # the collate really resizes

    interrupted, _ = train(tmp_path, "resumed", [StopBeforeEpoch(stop_at)])
    assert interrupted.interrupted
    resumed_record = Recorder()
    resumed, _ = train(tmp_path, "resumed", [resumed_record], resume=True)
    # The resumed run starts at stop_at with a fresh loss (static assigner on) and switches at once.
    assert resumed_record.static == {e: False for e in range(stop_at, 4)}
    assert all(resumed_record.sizes[e] == straight_record.sizes[e] for e in range(stop_at, 4))
    a, b = straight.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
