"""A process of a distributed job dies or stops answering: the others end with an error naming it, not a hang,
and the last checkpoint stays readable."""

import socket

import pytest
import torch
from ddp_launch import JOB, job_env, report, start_torchrun, torchrun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_last_checkpoint_readable(folder, name: str) -> None:
    checkpoint = torch.load(folder / "checkpoints" / name / "ckpt_latest.pth", weights_only=True)
    assert checkpoint["epoch"] == 1  # the first epoch finished before the fault in the second


@pytest.mark.slow
def test_a_killed_process_ends_the_other_with_its_rank_named(tmp_path):
    """Two machines' worth of torchrun (one agent per node, as a multi-node job runs): rank 1 is SIGKILLed in the
    middle of epoch 2; rank 0 stops at its next collective with a PeerLostError naming rank 1."""
    port, env = _free_port(), job_env(TRAINWRIGHT_DDP_TIMEOUT="60")
    logs = [tmp_path / f"node{n}.log" for n in (0, 1)]
    agents = []
    for node, log in enumerate(logs):
        with open(log, "w") as out:
            agents.append(start_torchrun("--nnodes", "2", "--nproc_per_node", "1", "--node-rank", node,
                                         "--master-addr", "127.0.0.1", "--master-port", port, JOB, "kill", tmp_path,
                                         env=env, log=out))  # fmt: skip
    codes = [agent.wait(timeout=600) for agent in agents]
    survivor, victim = (log.read_text() for log in logs)
    assert codes[0] != 0 and codes[1] != 0, (codes, survivor[-3000:])
    assert "PeerLostError" in survivor and "rank(s) [1] of 2 did not answer" in survivor, survivor[-3000:]
    assert "Signal 9 (SIGKILL)" in victim, victim[-3000:]
    _assert_last_checkpoint_readable(tmp_path, "fault_kill")


@pytest.mark.slow
def test_a_process_that_stops_answering_ends_the_job_after_the_timeout(tmp_path):
    """Rank 1 sleeps in the middle of epoch 2: rank 0's collective times out after TRAINWRIGHT_DDP_TIMEOUT and it
    names rank 1; torchrun then ends the sleeper."""
    result = torchrun("--standalone", "--nproc_per_node", "2", JOB, "hang", tmp_path,
                      env=job_env(TRAINWRIGHT_DDP_TIMEOUT="5"))  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, report(result)
    # gloo words the timeout either way, depending on which side of the pair notices it first
    timed_out = "Timed out waiting 5000ms" in output or "Application timeout caused pair closure" in output
    assert timed_out and "rank(s) [1] of 2 did not answer" in output, report(result)
    _assert_last_checkpoint_readable(tmp_path, "fault_hang")
