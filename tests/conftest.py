"""Shared test set-up: offscreen Qt, an isolated cache folder, no network."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# belt and braces for the per-test QSettings folders below: Qt's default settings folder is a temporary one too,
# set before any QSettings exists, so no test can write the user's ~/.config/FloodLabel
import tempfile  # noqa: E402

os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="floodlabel-test-config-")

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own FLOODLABEL_CACHE_DIR so nothing touches the user's cache."""
    d = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """Every test gets its own QSettings folder (INI files), so nothing reads or writes the user's settings."""
    from PySide6.QtCore import QSettings

    d = tmp_path_factory.mktemp("settings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(d))
    return d


# tests import helpers such as tiny_sam and synthetic_scenes from this folder
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
