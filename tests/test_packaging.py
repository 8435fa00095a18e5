"""The wheel ships resources/ as the package floodlabel.resources: built from a copy of the sources, installed with
--target into a temp folder and run from there (not from the repository), the CLI starts and the app icon and the
bundled sample resolve inside the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("floodlabel", "resources", "pyproject.toml", "setup.py", "README.md")

CHECK = """
import json, floodlabel, floodlabel.resources
from PySide6.QtWidgets import QApplication
from floodlabel.core.data.datasets import open_dataset
from floodlabel.gui.resources import RESOURCES_DIR, app_icon, sample_dataset_dir
app = QApplication([])
print(json.dumps({"package": floodlabel.__file__, "resources": str(RESOURCES_DIR), "sample": str(sample_dataset_dir()),
                  "icon": not app_icon().isNull(), "pairs": len(open_dataset(sample_dataset_dir()).complete_pairs),
                  "readme": (sample_dataset_dir() / "README.txt").read_text()}))
"""


def test_wheel_ships_the_icon_and_the_sample(tmp_path):
    src = tmp_path / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("floodlabel-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"floodlabel/resources/floodlabel.svg", "floodlabel/resources/sample/README.txt",
            "floodlabel/resources/sample/Image/1.jpg", "floodlabel/resources/sample/Mask/1.png"} <= names
    shipped_py = {n for n in names if n.endswith(".py")}
    source_py = {p.relative_to(REPO).as_posix() for p in (REPO / "floodlabel").rglob("*.py")}
    assert source_py <= shipped_py  # every subpackage found (setup.py's find_packages)

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site), "QT_QPA_PLATFORM": "offscreen"}
    version = subprocess.run([str(site / "bin" / "floodlabel"), "--version"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, check=True)
    assert version.stdout.startswith("floodlabel ")

    out = subprocess.run([sys.executable, "-c", CHECK], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(got["package"]).is_relative_to(site), got  # the installed copy, not the repository
    assert Path(got["resources"]) == site / "floodlabel" / "resources"
    assert Path(got["sample"]) == site / "floodlabel" / "resources" / "sample"
    assert got["icon"] and got["pairs"] == 5 and "SYNTHETIC" in got["readme"]
