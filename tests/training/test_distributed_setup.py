"""The single-process side of distributed training: Trainer arguments in the reference's order, multi_gpu,
the timeout setting, data shares, BatchNorm conversion, and a one-process gloo group."""

import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from trainer_helpers import TinyNet, base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.distributed import DDP_TIMEOUT_ENV, MultiGPUMode, ddp_timeout, initialize_ddp
from trainwright.nn.sync_batchnorm import ProcessGroupBatchNorm, convert_sync_batchnorm
from trainwright.training.data_order import RankShardSampler, shard_loader
from trainwright.training.distributed_run import is_collective_failure


def test_trainer_takes_device_second_as_the_reference_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = Trainer("exp", "cpu")
    assert trainer.device == torch.device("cpu") and trainer.ckpt_root_dir == str(tmp_path / "checkpoints")
    assert trainer.multi_gpu is MultiGPUMode.OFF
    keyword = Trainer("exp", ckpt_root_dir=tmp_path / "runs", device="cpu", multi_gpu="Off")
    assert keyword.experiment_dir == str(tmp_path / "runs" / "exp") and keyword.device.type == "cpu"
    positional = Trainer("exp", "cpu", None, tmp_path / "runs")
    assert positional.experiment_dir == keyword.experiment_dir
    assert not (tmp_path / "cpu").exists()


def test_a_folder_where_the_device_goes_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"device must be .*pass ckpt_root_dir= by keyword"):
        Trainer("exp", str(tmp_path / "checkpoints"))


@pytest.mark.parametrize(("value", "mode"), [(None, MultiGPUMode.OFF), (False, MultiGPUMode.OFF), ("Off", MultiGPUMode.OFF),
                                             ("OFF", MultiGPUMode.OFF), ("ddp", MultiGPUMode.DISTRIBUTED_DATA_PARALLEL),
                                             ("DISTRIBUTED_DATA_PARALLEL", MultiGPUMode.DISTRIBUTED_DATA_PARALLEL),
                                             ("distributedDataParallel", MultiGPUMode.DISTRIBUTED_DATA_PARALLEL),
                                             ("Auto", MultiGPUMode.AUTO), (MultiGPUMode.DATA_PARALLEL, MultiGPUMode.DATA_PARALLEL)])  # fmt: skip
def test_multi_gpu_spellings(value, mode):
    assert MultiGPUMode.parse(value) is mode


def test_unsupported_or_unknown_multi_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="multi_gpu='DP'.*not supported"):
        Trainer("exp", "cpu", "DP", tmp_path)
    with pytest.raises(ValueError, match="multi_gpu must be one of .*got 'four'"):
        Trainer("exp", "cpu", "four", tmp_path)
    with pytest.raises(ValueError, match="got True"):
        MultiGPUMode.parse(True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="relaunches the script on the visible GPUs")
def test_ddp_outside_torchrun_without_gpus_says_how_to_launch(tmp_path, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node N"):
        Trainer("exp", "cpu", "DDP", tmp_path)
    assert Trainer("exp", "cpu", "AUTO", tmp_path).multi_gpu is MultiGPUMode.OFF  # AUTO: one process here


@pytest.mark.parametrize("raw", ["ten", "0", "-3", "nan"])
def test_bad_timeout_setting_names_the_variable_and_value(monkeypatch, raw):
    monkeypatch.setenv(DDP_TIMEOUT_ENV, raw)
    with pytest.raises(ValueError, match=f"{DDP_TIMEOUT_ENV} must be .*{raw!r}"):
        ddp_timeout()


def test_timeout_setting(monkeypatch):
    monkeypatch.delenv(DDP_TIMEOUT_ENV, raising=False)
    assert ddp_timeout().total_seconds() == 1800
    monkeypatch.setenv(DDP_TIMEOUT_ENV, "12.5")
    assert ddp_timeout().total_seconds() == 12.5


def test_rank_shares_cover_each_index_once_without_padding():
    shares = [list(RankShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for share in shares for i in share) == list(range(11))
    assert [len(RankShardSampler(11, rank, 3)) for rank in range(3)] == [4, 4, 3]
    with pytest.raises(ValueError, match="rank must be in"):
        RankShardSampler(4, 3, 3)


def test_sync_batchnorm_conversion_keeps_weights_statistics_and_keys():
    model = TinyNet()
    model.bn.running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_sync_batchnorm(model)
    assert isinstance(converted.bn, ProcessGroupBatchNorm)
    after = converted.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    plain = torch.nn.BatchNorm1d(8)
    plain.load_state_dict(converted.bn.state_dict())
    x = torch.randn(6, 8)
    assert torch.allclose(converted.bn(x), plain(x))  # without a process group: an ordinary BatchNorm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_process_group(monkeypatch):
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_trainer_joins_torchruns_group_with_gloo_on_cpu(one_process_group, tmp_path):
    trainer = Trainer("ddp", "cpu", ckpt_root_dir=tmp_path)
    assert dist.is_initialized() and dist.get_backend() == "gloo"
    assert trainer.multi_gpu is MultiGPUMode.DISTRIBUTED_DATA_PARALLEL
    trainer.train(tiny_model(), base_params(max_epochs=1, sync_bn=True), *make_loaders())
    assert isinstance(trainer.net, torch.nn.parallel.DistributedDataParallel)
    assert isinstance(trainer.state.train_loader.sampler, DistributedSampler)
    assert isinstance(trainer.state.valid_loader.sampler, RankShardSampler)
    checkpoint = torch.load(tmp_path / "ddp" / "ckpt_latest.pth", weights_only=True)
    assert not any(key.startswith("module.") for key in checkpoint["net"])


def test_shard_loader_keeps_the_loader_settings(one_process_group):
    initialize_ddp()
    data = TensorDataset(torch.arange(10.0))
    loader = DataLoader(data, batch_size=3, shuffle=True, drop_last=True, collate_fn=lambda b: b, timeout=7)
    sharded = shard_loader(loader, seed=5, training=True)
    assert sharded is not loader and isinstance(sharded.sampler, DistributedSampler) and sharded.sampler.shuffle
    assert (sharded.batch_size, sharded.drop_last, sharded.collate_fn, sharded.timeout) == (3, True, loader.collate_fn, 7)
    assert shard_loader(sharded, seed=5, training=True) is sharded  # already shared out
    ordered = shard_loader(DataLoader(data, batch_size=4), seed=5, training=False)
    assert [len(b[0]) for b in ordered] == [4, 4, 2]
    custom = DataLoader(data, batch_size=2, sampler=[9, 8, 7])
    assert shard_loader(custom, seed=5, training=True) is custom  # left alone (with a warning)


def test_shard_loader_shares_out_a_detection_loader_and_keeps_its_workers(one_process_group):
    from trainwright.data import build_detection_loader
    from trainwright.data.loaders import DetectionDataLoader

    initialize_ddp()
    loader = build_detection_loader(TensorDataset(torch.arange(10.0)), batch_size=2, shuffle=True, num_workers=1,
                                    persistent_workers=True, collate_fn=lambda b: b, seed=3)
    sharded = shard_loader(loader, seed=5, training=True)
    assert isinstance(sharded, DetectionDataLoader) and isinstance(sharded.sampler, DistributedSampler)
    assert (sharded.num_workers, sharded.persistent_workers, sharded.worker_init_fn) == (1, True, loader.worker_init_fn)
    assert sorted(int(x[0]) for batch in sharded for x in batch) == list(range(10))


def test_relaunch_arguments_name_the_module_or_the_script(monkeypatch, tmp_path):
    from trainwright.distributed import _relaunch_arguments

    class Spec:
        name = "trainwright.__main__"

    main = type(sys)("__main__")
    main.__spec__ = Spec()
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["/x/trainwright/__main__.py", "train", "a=1"])
    assert _relaunch_arguments() == ["--module", "trainwright", "train", "a=1"]
    main.__spec__ = None
    script = tmp_path / "job.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script), "--x"])
    assert _relaunch_arguments() == [str(script), "--x"]
    monkeypatch.setattr(sys, "argv", ["-c"])
    with pytest.raises(RuntimeError, match="launch it with torchrun"):
        _relaunch_arguments()
    assert os.path.isfile(script)


def _raise_from(filename: str, message: str) -> RuntimeError:
    """A RuntimeError whose innermost frame is code compiled as `filename` (where the error comes from)."""
    try:
        exec(compile(f"raise RuntimeError({message!r})", filename, "exec"))
    except RuntimeError as err:
        return err
    raise AssertionError("nothing raised")


def test_collective_failures_are_told_from_the_users_errors():
    """gloo's timeouts are recognised by their wording or by being raised in torch.distributed / DDP code (its
    buffer broadcast says only "Application timeout caused pair closure"); a user's own error is not."""
    ddp_file = os.path.join(os.path.dirname(torch.__file__), "nn", "parallel", "distributed.py")
    assert is_collective_failure(RuntimeError("Application timeout caused pair closure"))
    assert is_collective_failure(RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer"))
    assert is_collective_failure(_raise_from(ddp_file, "some future wording"))
    assert is_collective_failure(dist.DistError("store lost"))
    assert not is_collective_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x3 and 4x2)"))
    assert not is_collective_failure(_raise_from("/home/user/my_model.py", "some future wording"))
    assert not is_collective_failure(ValueError("Timed out waiting for the user"))
