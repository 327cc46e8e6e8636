"""Distributed helpers: single-process fallbacks, a 1-process gloo group, and a 2-process launch."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from trainwright.distributed import (
    DDPNotSetupException,
    compute_precise_bn_stats,
    distributed_all_reduce_tensor_average,
    get_gpu_mem_utilization,
    get_local_rank,
    get_world_size,
    initialize_ddp,
    is_main_process,
    reduce_results_tuple_for_ddp,
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_fallbacks():
    assert (get_local_rank(), get_world_size(), is_main_process()) == (0, 1, True)
    assert reduce_results_tuple_for_ddp((1.0, 2), "cpu") == (1.0, 2)
    with pytest.raises(DDPNotSetupException):
        distributed_all_reduce_tensor_average(torch.ones(2), 2)
    assert get_gpu_mem_utilization() >= 0


def test_initialize_ddp_without_launcher_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(DDPNotSetupException, match="torchrun"):
        initialize_ddp()


@pytest.fixture
def gloo_group(monkeypatch):
    env = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    initialize_ddp()
    yield
    dist.destroy_process_group()


def test_one_process_gloo_group(gloo_group, tmp_path):
    assert dist.is_initialized() and get_world_size() == 1 and get_local_rank() == 0
    assert torch.equal(distributed_all_reduce_tensor_average(torch.tensor([2.0, 4.0]), 2), torch.tensor([1.0, 2.0]))
    assert reduce_results_tuple_for_ddp((1.0, 3.0), "cpu") == (1.0, 3.0)
    # the trainer wraps the model in DistributedDataParallel and still trains and saves
    sys.path.insert(0, str(Path(__file__).parent / "training"))
    from trainer_helpers import base_params, make_loaders, tiny_model

    from trainwright import Trainer

    trainer = Trainer("ddp", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), base_params(max_epochs=1), *make_loaders())
    assert isinstance(trainer.net, torch.nn.parallel.DistributedDataParallel)
    ckpt = torch.load(tmp_path / "ddp" / "ckpt_latest.pth", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["net"])


def test_precise_bn_stats_average_batch_statistics():
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(2, momentum=0.3))
    data = torch.arange(24, dtype=torch.float32).reshape(12, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=4)
    model.eval()
    compute_precise_bn_stats(model, loader, precise_bn_batch_size=8, num_gpus=1)  # 2 batches
    bn = model[0]
    assert torch.allclose(bn.running_mean, data[:8].mean(0))
    batch_vars = torch.stack([data[:4].var(0), data[4:8].var(0)]).mean(0)
    assert torch.allclose(bn.running_var, batch_vars)
    assert bn.momentum == 0.3 and not model.training


@pytest.mark.slow
def test_two_processes_via_restart_script_with_ddp(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, torch
        from trainwright.distributed import (restart_script_with_ddp, initialize_ddp, get_world_size, get_local_rank,
                                             distributed_all_reduce_tensor_average)
        if "LOCAL_RANK" not in os.environ:
            restart_script_with_ddp(num_gpus=2)
        initialize_ddp()
        value = distributed_all_reduce_tensor_average(torch.tensor([float(get_local_rank())]), get_world_size())
        with open(os.path.join({str(tmp_path)!r}, f"rank{{get_local_rank()}}.txt"), "w") as f:
            f.write(f"{{get_world_size()}} {{value.item()}}")
        torch.distributed.destroy_process_group()
    """)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    subprocess.run([sys.executable, str(script)], check=True, env=env, timeout=120, capture_output=True)
    assert (tmp_path / "rank0.txt").read_text() == "2 0.5" and (tmp_path / "rank1.txt").read_text() == "2 0.5"
