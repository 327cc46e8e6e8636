"""Launching the distributed tests' jobs as a user does: `python -m torch.distributed.run ...` in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("ddp_job.py")
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")


def job_env(**extra: str) -> dict:
    """This checkout first on the path, one thread per process, no launcher variables of an outer job."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARIABLES}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
               **extra)  # fmt: skip
    env.pop("TRAINWRIGHT_DEBUG", None)
    return env


def run_python(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`python ARGS`, output captured."""
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env or job_env(),
                          cwd=cwd, timeout=timeout)  # fmt: skip


def torchrun(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run ARGS` (what the `torchrun` command runs), output captured."""
    return run_python("-m", "torch.distributed.run", *args, env=env, cwd=cwd, timeout=timeout)


def start_torchrun(*args, env=None, log=None) -> subprocess.Popen:
    """`python -m torch.distributed.run ARGS` started in the background, stdout and stderr into the file `log`."""
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *map(str, args)], env=env or job_env(),
                            stdout=log, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def report(result: subprocess.CompletedProcess) -> str:
    """The end of a finished command's output, for assertion messages."""
    return f"exit {result.returncode}\n{(result.stdout + result.stderr)[-4000:]}"
