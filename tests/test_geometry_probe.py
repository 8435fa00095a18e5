"""The geometry file real-window tests read (floodlabel/gui/window/geometry_probe.py), checked offscreen."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QPushButton, QVBoxLayout, QWidget

from floodlabel.gui.window.geometry_probe import ENV_VAR, install_geometry_probe


def test_nothing_happens_without_the_variable(qtbot, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    window = QWidget()
    qtbot.addWidget(window)
    assert install_geometry_probe(window) is None


def test_the_file_has_the_contract_keys_and_follows_readiness(qtbot, monkeypatch, tmp_path):
    path = tmp_path / "geometry.json"
    monkeypatch.setenv(ENV_VAR, str(path))
    window = QWidget()
    qtbot.addWidget(window)
    button, view = QPushButton("Open"), QWidget()
    layout = QVBoxLayout(window)
    layout.addWidget(button)
    layout.addWidget(view)
    ready = {"now": False}
    points = [[0.0, 0.0, 10.0, 20.0], [100.0, 0.0, 60.0, 20.0], [0.0, 50.0, 10.0, 45.0]]
    probe = install_geometry_probe(window, view=view, image_to_screen=lambda: points, ready=lambda: ready["now"])
    assert probe is not None
    window.resize(400, 300)
    window.show()
    qtbot.waitUntil(path.exists)
    data = json.loads(path.read_text())
    assert data["window"][2:] == [400, 300]
    assert len(data["view"]) == 4 and data["view"][2] > 0
    assert data["image_to_screen"] == points
    assert data["ready"] is False
    assert set(data) == {"window", "view", "image_to_screen", "ready"}

    ready["now"] = True
    probe.update()
    qtbot.waitUntil(lambda: json.loads(path.read_text())["ready"] is True)
