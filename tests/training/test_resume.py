"""Resume: an interrupted-then-resumed run ends bit-exactly where an uninterrupted one does; data order per epoch."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import Callback
from trainwright.training.data_order import set_epoch_order


class StopBeforeEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_loader_start(self, ctx):
        if ctx.epoch == self.epoch:
            raise KeyboardInterrupt


def params(**kw):
    return base_params(
        max_epochs=4,
        lr_mode="cosine",
        lr_warmup_epochs=1,
        ema=True,
        ema_params={"decay": 0.9, "decay_type": "threshold"},
        **kw,
    )


@pytest.mark.parametrize("stop_at", [1, 3])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, stop_at):
    straight = Trainer("straight", "cpu", ckpt_root_dir=tmp_path)
    straight.train(tiny_model(seed=1), params(), *make_loaders())

    resumed = Trainer("resumed", "cpu", ckpt_root_dir=tmp_path)
    resumed.train(tiny_model(seed=1), params(phase_callbacks=[StopBeforeEpoch(stop_at)]), *make_loaders())
    assert resumed.interrupted
    resumed = Trainer("resumed", "cpu", ckpt_root_dir=tmp_path)
    resumed.train(tiny_model(seed=7), params(resume=True), *make_loaders())  # fresh objects, other init

    for name, a, b in (("net", straight.net, resumed.net), ("ema", straight.ema_model.ema, resumed.ema_model.ema)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert straight.best_metric == resumed.best_metric
    assert straight.state.optimizer.param_groups[0]["lr"] == resumed.state.optimizer.param_groups[0]["lr"]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_latest.pth"):
        Trainer("none", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), params(resume=True), *make_loaders())


def test_results_csv_keeps_rows_before_the_resumed_epoch(tmp_path):
    trainer = Trainer("csv", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), params(phase_callbacks=[StopBeforeEpoch(2)]), *make_loaders())
    Trainer("csv", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), params(resume=True), *make_loaders())
    lines = (tmp_path / "csv" / "results.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2", "3"]


def _order(loader):
    return torch.cat([y for _, y in loader]).tolist()


def test_epoch_order_depends_only_on_seed_and_epoch():
    ds = TensorDataset(torch.zeros(20, 1), torch.arange(20))
    a, b = DataLoader(ds, batch_size=4, shuffle=True), DataLoader(ds, batch_size=4, shuffle=True)
    set_epoch_order(a, seed=3, epoch=0)
    first = _order(a)
    torch.manual_seed(123)  # the global RNG does not matter
    set_epoch_order(b, seed=3, epoch=0)
    assert _order(b) == first
    set_epoch_order(b, seed=3, epoch=1)
    second = _order(b)
    assert second != first and sorted(second) == list(range(20))
    set_epoch_order(a, seed=3, epoch=1)
    assert _order(a) == second


def test_distributed_style_sampler_gets_set_epoch():
    class Sampler(torch.utils.data.Sampler):
        def __init__(self):
            self.epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            return iter(range(4))

        def __len__(self):
            return 4

    sampler = Sampler()
    loader = DataLoader(TensorDataset(torch.arange(4)), sampler=sampler)
    set_epoch_order(loader, seed=0, epoch=5)
    assert sampler.epoch == 5


def test_resume_continues_a_wrapped_torch_scheduler(tmp_path):
    from trainwright.callbacks.base import Phase
    from trainwright.callbacks.lr import LRSchedulerCallback

    def run(name, extra_callbacks=(), resume=False, seed=1):
        model = tiny_model(seed=seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = LRSchedulerCallback(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), Phase.TRAIN_EPOCH_END)
        trainer = Trainer(name, "cpu", ckpt_root_dir=tmp_path)
        p = base_params(max_epochs=3, optimizer=opt, phase_callbacks=[*extra_callbacks, sched], resume=resume)
        trainer.train(model, p, *make_loaders())
        return trainer, opt

    straight, opt_a = run("a")
    run("b", [StopBeforeEpoch(2)])
    resumed, opt_b = run("b", [StopBeforeEpoch(99)], resume=True, seed=5)
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"] == 0.1 * 0.5**3
    sa, sb = straight.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
