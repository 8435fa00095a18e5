"""SAM 2.1's dependency on a fresh machine: the README's two commands (packaging/run.sh, test.sh) source
packaging/setup_env.sh, which builds Meta's sam2==1.1.0 after the main install, unattended (SAM2_BUILD_CUDA=0,
--no-build-isolation against the venv's torch), and again whenever it is missing. Run here with a stand-in python
that records its calls (no network, no real install); plus what this venv has."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STUB = """#!/usr/bin/env bash
echo "SAM2_BUILD_CUDA=${SAM2_BUILD_CUDA:-unset} $*" >> "$(dirname "$0")/calls.log"
case "$*" in
  *find_spec*) [ -f "$(dirname "$0")/has_sam2" ] ;;
  *) exit 0 ;;
esac
"""


def fake_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "packaging").mkdir(parents=True)
    shutil.copy2(REPO / "packaging" / "setup_env.sh", repo / "packaging" / "setup_env.sh")
    shutil.copy2(REPO / "pyproject.toml", repo / "pyproject.toml")
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB)
    python.chmod(0o755)
    return repo


def setup_env(repo: Path, extras: str = "") -> list[str]:
    log = repo / ".venv" / "bin" / "calls.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "SAM2_BUILD_CUDA"}
    subprocess.run(["bash", "-c", f'source "{repo}/packaging/setup_env.sh" "{extras}"'], env=env, check=True,
                   capture_output=True, text=True, timeout=60)
    return log.read_text().splitlines() if log.exists() else []


def test_first_run_installs_sam2_after_the_main_install(tmp_path):
    repo = fake_repo(tmp_path)
    calls = setup_env(repo, "test")
    main = next(i for i, c in enumerate(calls) if "install" in c and "-e" in c.split())
    sam2 = next(i for i, c in enumerate(calls) if c.endswith("sam2==1.1.0"))
    assert main < sam2
    assert calls[sam2].startswith("SAM2_BUILD_CUDA=0 ") and "--no-build-isolation" in calls[sam2]
    assert (repo / ".venv" / ".install-stamp-test").is_file()


def test_later_runs_install_sam2_only_when_it_is_missing(tmp_path):
    repo = fake_repo(tmp_path)
    setup_env(repo)
    (repo / ".venv" / "bin" / "has_sam2").touch()
    calls = setup_env(repo)
    assert not any("install" in c for c in calls)  # stamp current, sam2 present: nothing to do
    (repo / ".venv" / "bin" / "has_sam2").unlink()
    calls = setup_env(repo)
    assert any(c.endswith("sam2==1.1.0") and c.startswith("SAM2_BUILD_CUDA=0 ") for c in calls)
    assert not any("-e" in c.split() for c in calls)  # only sam2, not everything again


def test_pins_and_runtime_dependencies():
    text = (REPO / "pyproject.toml").read_text()
    for pin in ('"torch==2.14.1"', '"torchvision==0.29.1"', '"PySide6-Essentials==6.11.3"', '"hydra-core>=1.3.2"',
                '"iopath>=0.1.10"'):
        assert pin in text
    assert importlib.metadata.version("sam2") == "1.1.0"
    configs = importlib.resources.files("sam2") / "configs" / "sam2.1"
    for letter in ("t", "s", "b+", "l"):
        assert (configs / f"sam2.1_hiera_{letter}.yaml").is_file()
