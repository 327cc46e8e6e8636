"""Stage-switch callbacks: fire once at the chosen epoch (or the first epoch after a resume), change the context."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from trainwright.callbacks.base import CallbackHandler, Phase, PhaseContext
from trainwright.callbacks.stage_switch import TrainingStageSwitchCallbackBase, YoloXTrainingStageSwitchCallback
from trainwright.models.detection.yolox_loss import YoloXDetectionLoss


class MosaicDataset(Dataset):
    """Stand-in detection dataset: item i is (i, mosaic flag at the time it was read)."""

    def __init__(self):
        self.mosaic = True

    def set_mosaic_enabled(self, enabled: bool) -> None:
        self.mosaic = enabled

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.tensor(i), torch.tensor(self.mosaic)


class RecordingSwitch(TrainingStageSwitchCallbackBase):
    def __init__(self, next_stage_start_epoch):
        super().__init__(next_stage_start_epoch)
        self.applied_at = []

    def apply_stage_change(self, context):
        self.applied_at.append(context.epoch)


def run_epochs(handler, context, epochs):
    handler.on_training_start(context)
    for epoch in epochs:
        context.update_context(epoch=epoch)
        handler.on_train_loader_start(context)


def test_base_applies_the_change_once_at_its_epoch():
    switch = RecordingSwitch(3)
    assert switch.phase is Phase.TRAIN_EPOCH_START
    run_epochs(CallbackHandler([switch]), PhaseContext(), range(6))
    assert switch.applied_at == [3]


def test_resumed_run_past_the_switch_epoch_applies_it_at_its_first_epoch():
    switch = RecordingSwitch(3)
    run_epochs(CallbackHandler([switch]), PhaseContext(), range(5, 8))
    assert switch.applied_at == [5]


def test_a_new_training_run_can_switch_again():
    switch = RecordingSwitch(1)
    handler = CallbackHandler([switch])
    run_epochs(handler, PhaseContext(), range(3))
    run_epochs(handler, PhaseContext(), range(3))
    assert switch.applied_at == [1, 1]


def test_other_events_do_not_fire_it():
    switch = RecordingSwitch(0)
    context = PhaseContext(epoch=0)
    switch.on_train_loader_end(context)
    switch.on_validation_loader_end(context)
    assert switch.applied_at == []


def test_base_requires_apply_stage_change_and_a_valid_epoch():
    with pytest.raises(NotImplementedError, match="apply_stage_change"):
        TrainingStageSwitchCallbackBase(0)(PhaseContext(epoch=0))
    with pytest.raises(ValueError, match="next_stage_start_epoch"):
        TrainingStageSwitchCallbackBase(-1)
    with pytest.raises(TypeError, match="next_stage_start_epoch"):
        TrainingStageSwitchCallbackBase(2.5)


def test_yolox_switch_turns_mosaic_off_and_l1_on_through_the_context():
    dataset = MosaicDataset()
    loader = DataLoader(dataset, batch_size=2)
    criterion = YoloXDetectionLoss(num_classes=2)
    context = PhaseContext(train_loader=loader, criterion=criterion)
    switch = YoloXTrainingStageSwitchCallback(next_stage_start_epoch=2)
    handler = CallbackHandler([switch])
    handler.on_training_start(context)
    seen = []
    for epoch in range(4):
        context.update_context(epoch=epoch)
        handler.on_train_loader_start(context)
        seen.append((bool(torch.cat([flags for _, flags in loader]).all()), criterion.use_l1))
    assert seen == [(True, False), (True, False), (False, True), (False, True)]


def test_yolox_switch_reaches_dataloader_workers_and_wrapped_datasets():
    dataset = MosaicDataset()
    loader = DataLoader(Subset(dataset, [0, 1, 2]), batch_size=3, num_workers=1)
    context = PhaseContext(epoch=285, train_loader=loader, criterion=YoloXDetectionLoss(num_classes=1))
    YoloXTrainingStageSwitchCallback().on_train_loader_start(context)
    ((_, flags),) = list(loader)
    assert not flags.any() and context.criterion.use_l1


def test_yolox_switch_errors_name_what_is_missing():
    context = PhaseContext(
        epoch=0, train_loader=DataLoader(list(range(3))), criterion=YoloXDetectionLoss(num_classes=1)
    )
    with pytest.raises(TypeError, match="set_mosaic_enabled"):
        YoloXTrainingStageSwitchCallback(0)(context)
    context = PhaseContext(epoch=0, train_loader=DataLoader(MosaicDataset()), criterion=torch.nn.MSELoss())
    with pytest.raises(TypeError, match="use_l1"):
        YoloXTrainingStageSwitchCallback(0)(context)
    persistent = DataLoader(MosaicDataset(), num_workers=1, persistent_workers=True)
    context = PhaseContext(epoch=0, train_loader=persistent, criterion=YoloXDetectionLoss(num_classes=1))
    with pytest.raises(ValueError, match="persistent_workers"):
        YoloXTrainingStageSwitchCallback(0)(context)


def test_yolox_switch_checks_the_context_when_training_starts():
    context = PhaseContext(train_loader=DataLoader(list(range(3))), criterion=YoloXDetectionLoss(num_classes=1))
    switch = YoloXTrainingStageSwitchCallback(next_stage_start_epoch=300)
    with pytest.raises(TypeError, match="set_mosaic_enabled"):
        switch.on_training_start(context)
    switch.on_training_start(PhaseContext())  # nothing to check yet


def test_yolox_switch_reaches_persistent_workers_of_a_trainwright_loader():
    from trainwright.data import build_detection_loader

    loader = build_detection_loader(MosaicDataset(), batch_size=4, num_workers=1, persistent_workers=True,
                                    collate_fn=torch.utils.data.default_collate)
    context = PhaseContext(train_loader=loader, criterion=YoloXDetectionLoss(num_classes=1))
    switch = YoloXTrainingStageSwitchCallback(next_stage_start_epoch=1)
    switch.on_training_start(context)  # no error: this loader restarts its workers at the switch
    seen = []
    for epoch in range(3):
        context.update_context(epoch=epoch)
        switch.on_train_loader_start(context)
        seen.append(bool(torch.cat([flags.flatten() for _, flags in loader]).all()))
    assert seen == [True, False, False]
