"""The shared NMS thread pool: one pool across calls, sized to torch's threads, usable again after a shutdown,
never reused by a forked child (a DataLoader worker)."""

import multiprocessing
import os

import pytest
import torch

from trainwright.models.detection.nms_threads import nms_threads, shutdown_nms_threads
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def decoded(batch=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy, wh = torch.rand(batch, 200, 2, generator=gen) * 320, 8 + torch.rand(batch, 200, 2, generator=gen) * 60
    return torch.cat([xy, wh, torch.rand(batch, 200, 4, generator=gen) ** 3], dim=2)


def test_one_pool_across_calls_and_a_new_one_after_shutdown(two_threads):
    if (multiprocessing.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the pool is never used")
    pool = nms_threads()
    assert pool is not None and nms_threads() is pool
    shutdown_nms_threads()
    with pytest.raises(RuntimeError):
        pool.submit(int)  # the old pool is shut down
    again = nms_threads()
    assert again is not None and again is not pool
    assert YoloXPostPredictionCallback(conf=0.01)(decoded())  # and it works


def test_one_torch_thread_means_no_pool():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert nms_threads() is None
    finally:
        torch.set_num_threads(threads)


def _report_pool_in_child(queue):
    from trainwright.models.detection import nms_threads as module

    queue.put(module._pool is None)


def test_a_forked_child_forgets_the_parents_pool(two_threads):
    if nms_threads() is None:
        pytest.skip("one CPU: the pool is never used")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_report_pool_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0 and queue.get(timeout=5) is True  # it would build its own on first use


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc (Linux)")
def test_pool_threads_start_no_openmp_teams_of_their_own(two_threads):
    """Large per-image ops on the pool run on the pool's threads alone: no OpenMP threads appear beside them
    (GNU OpenMP would otherwise count more threads than CPUs and stop spin-waiting in the training step)."""
    shutdown_nms_threads()
    torch.ones(1 << 20).add_(1)  # the main thread's own OpenMP team exists before counting
    before = os_threads()
    pool = nms_threads()
    if pool is None:
        pytest.skip("one CPU: the pool is never used")
    assert pool.submit(torch.get_num_threads).result() == 1 and torch.get_num_threads() == 2
    gen = torch.Generator().manual_seed(0)
    raw = torch.cat([torch.rand(4, 8400, 2, generator=gen) * 640, 8 + torch.rand(4, 8400, 2, generator=gen) * 60,
                     torch.rand(4, 8400, 81, generator=gen) ** 4], dim=2)  # 8400 anchors x 80 classes per image
    assert len(YoloXPostPredictionCallback(conf=0.001)(raw)) == 4
    assert os_threads() - before == pool._max_workers
