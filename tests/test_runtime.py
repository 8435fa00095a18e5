"""Process tuning: glibc malloc settings applied in a fresh process, and the opt-out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from floodlabel.runtime import tune_allocator, allocator_status; print(tune_allocator()); print(allocator_status())"


def _run(env_extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"} | env_extra
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuning_applies_in_a_fresh_process():
    tuned, status = _run({})
    assert tuned == "True" and "tuned" in status


def test_system_allocator_opt_out():
    tuned, status = _run({"FLOODLABEL_ALLOCATOR": "system"})
    assert tuned == "False" and "default" in status
