"""SAM 3 on a fresh machine: packaging/setup_env.sh installs Meta's sam3==0.1.4 with --no-deps after the main install
(its dependencies come from pyproject.toml; its numpy<2.4 pin would take numpy back), again whenever it is missing,
and everything again when its version changes (the stamp covers it). Run with a stand-in python that records its
calls (no network, no real install); plus what this venv has: sam3 and its dependencies on the venv's numpy."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

STUB = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/calls.log"
case "$*" in
  *find_spec*sam2*) [ -f "$(dirname "$0")/has_sam2" ] ;;
  *find_spec*sam3*) [ -f "$(dirname "$0")/has_sam3" ] ;;
  *) exit 0 ;;
esac
"""


def fake_repo(tmp_path: Path, script: str | None = None) -> Path:
    repo = tmp_path / "repo"
    (repo / "packaging").mkdir(parents=True)
    (repo / "packaging" / "setup_env.sh").write_text(script or (REPO / "packaging" / "setup_env.sh").read_text())
    shutil.copy2(REPO / "pyproject.toml", repo / "pyproject.toml")
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB)
    python.chmod(0o755)
    return repo


def setup_env(repo: Path) -> list[str]:
    log = repo / ".venv" / "bin" / "calls.log"
    log.unlink(missing_ok=True)
    subprocess.run(["bash", "-c", f'source "{repo}/packaging/setup_env.sh" ""'], env=dict(os.environ), check=True,
                   capture_output=True, text=True, timeout=60)
    return log.read_text().splitlines() if log.exists() else []


def test_first_run_installs_sam3_without_its_pins_after_the_main_install(tmp_path):
    calls = setup_env(fake_repo(tmp_path))
    main = next(i for i, c in enumerate(calls) if "install" in c and "-e" in c.split())
    sam3 = next(i for i, c in enumerate(calls) if c.endswith("sam3==0.1.4"))
    assert main < sam3 and "--no-deps" in calls[sam3].split()


def test_sam3_alone_when_missing_and_everything_when_its_version_changes(tmp_path):
    repo = fake_repo(tmp_path)
    setup_env(repo)
    for name in ("has_sam2", "has_sam3"):
        (repo / ".venv" / "bin" / name).touch()
    assert not any("install" in c for c in setup_env(repo))
    (repo / ".venv" / "bin" / "has_sam3").unlink()
    calls = [c for c in setup_env(repo) if "install" in c]
    assert len(calls) == 1 and calls[0].endswith("sam3==0.1.4") and "--no-deps" in calls[0].split()
    (repo / ".venv" / "bin" / "has_sam3").touch()
    script = (repo / "packaging" / "setup_env.sh").read_text().replace('SAM3_SPEC="sam3==0.1.4"',
                                                                         'SAM3_SPEC="sam3==0.1.5"')
    (repo / "packaging" / "setup_env.sh").write_text(script)
    calls = setup_env(repo)
    assert any("-e" in c.split() for c in calls) and any(c.endswith("sam3==0.1.5") for c in calls)


def test_runtime_dependencies_are_declared_and_work_on_this_numpy():
    pytest.importorskip("sam3")
    text = (REPO / "pyproject.toml").read_text()
    for dep in ("timm", "ftfy", "regex", "einops", "huggingface-hub", "psutil", "open_clip_torch"):
        assert f'"{dep}' in text, dep
    for pin in ('"torch==2.14.1"', '"torchvision==0.29.1"', '"PySide6-Essentials==6.11.3"'):
        assert pin in text
    assert importlib.metadata.version("sam3") == "0.1.4"
    import numpy
    import sam3.model_builder  # noqa: F401  (imports every module the image model needs)

    assert numpy.__version__ == importlib.metadata.version("numpy")
