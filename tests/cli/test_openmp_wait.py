"""The `trainwright` command leaves OpenMP's wait policy to OpenMP (or to the user) instead of forcing passive waits,
which made training epochs 1.3-1.9x slower on 2 cores (benchmarks/epoch.py)."""

import os
import subprocess
import sys

SHOW_ENV = """
import os, sys
from trainwright.cli import main
try:
    main(["train", "--help"])
except SystemExit:
    pass
print(os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"))
"""


def policy_seen_by_torch(extra: dict[str, str]) -> list[str]:
    """OMP_WAIT_POLICY and GOMP_SPINCOUNT in the environment after the command started, with `extra` set before."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", SHOW_ENV], env={**env, **extra}, capture_output=True, text=True,
                          check=True)
    return done.stdout.split()[-2:]


def test_the_command_sets_no_wait_policy_and_keeps_the_users():
    assert policy_seen_by_torch({}) == ["None", "None"]
    assert policy_seen_by_torch({"OMP_WAIT_POLICY": "PASSIVE"}) == ["PASSIVE", "None"]
    assert policy_seen_by_torch({"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "5"}) == ["ACTIVE", "5"]
