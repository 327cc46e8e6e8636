"""DetectionMetrics gives the same numbers on 2 processes (gloo) as on one, also when a rank saw no batch."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainwright.metrics import DetectionMetrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SHARES = {"split": [[0, 1], [2]], "idle_rank": [[0, 1, 2], []]}  # batch indices per rank


def _worker(rank: int, world_size: int, port: int, data_path: str, out_path: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        batches = torch.load(data_path, weights_only=True)
        results = {}
        for name, shares in SHARES.items():
            metric = DetectionMetrics(4, None, normalize_targets=True, include_classwise_ap=True)
            for i in shares[rank]:
                preds, targets, crowds = batches[i]
                metric.update(preds, targets, crowd_targets=crowds)
            results[name] = {k: float(v) for k, v in metric.compute().items()}
        torch.save(results, f"{out_path}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, make_batch):
    batches = [make_batch(40 + i, none_for_empty=False) for i in range(3)]
    torch.save(batches, tmp_path / "data.pt")
    single = DetectionMetrics(4, None, normalize_targets=True, include_classwise_ap=True)
    for preds, targets, crowds in batches:
        single.update(preds, targets, crowd_targets=crowds)
    expected = {k: float(v) for k, v in single.compute().items()}
    assert expected["mAP@0.50:0.95"] > 0
    out = str(tmp_path / "result")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "data.pt"), out), nprocs=2, join=True)
    for rank in range(2):
        results = torch.load(f"{out}.{rank}", weights_only=True)
        for name in SHARES:
            assert results[name] == pytest.approx(expected, abs=1e-7), (rank, name)
