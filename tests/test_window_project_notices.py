"""The window and its project: messages that stay until dismissed, recovery of accepted masks the database lost, a
read-only second window that says so and takes over when the first closes, and SIGTERM closing the project."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from floodlabel.core.annotation.annotation import Annotation
from floodlabel.core.store.project_store import DB_NAME, PROJECT_DIR_NAME, ProjectStore, Status
from synthetic_scenes import interior_point
from test_annotation_window import (checkpoint, click, data, isolated_settings, session,  # noqa: F401 (fixtures)
                                    wait_mask, wait_ready)


def accept_in_store(folder, scenes, stems=("a_lake", "b_river")) -> None:
    """Accept the GT of `stems` with a one-point prompt (as the window would store it)."""
    with ProjectStore(folder) as store:
        for stem in stems:
            gt = scenes[stem][1]
            annotation = Annotation(gt.shape)
            annotation.add_point(*interior_point(gt), True)
            store.accept(f"Image/{stem}.png", gt, annotation.to_dict(), model_id="t")


def test_read_only_second_window_says_so_saves_nothing_and_takes_over(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    w2 = window(folder, session=session)
    wait_ready(qtbot, w2)  # the image loaded: the project's message is still there
    assert w2.project_notice.isVisible() and "Nothing you do in this window is saved" in w2.project_notice.text()
    click(w2, *interior_point(scenes["a_lake"][1]))
    wait_mask(qtbot, w2)
    assert w2.image_list.model.row(0).status == "new"  # not "in progress": it would never be saved
    assert w2.project_notice.isVisible()

    w.close()
    qtbot.waitUntil(lambda: w2.accept_action.isEnabled(), timeout=10000)
    assert w2.accept_action.isEnabled() and "saves your work now" in w2.project_notice.text()
    QTest.keyClick(w2, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Accepted 1 / 3" in w2.project_label.text(), timeout=5000)


def test_notice_stays_until_dismissed(qtbot, window, data, session):
    folder, _ = data
    w = window(folder, session=session)
    w.project_notice.show_notice("test", "something about the project")
    wait_ready(qtbot, w)
    w.select_image(1)
    qtbot.waitUntil(lambda: w.controller.item is not None and w.controller.row == 1, timeout=10000)
    assert w.project_notice.text() == "something about the project"
    w.project_notice.close_button.click()
    assert not w.project_notice.isVisible()


def test_window_offers_masks_the_database_lost_and_recovers_them(qtbot, window, data, session):
    folder, scenes = data
    accept_in_store(folder, scenes)
    project = folder / PROJECT_DIR_NAME
    (project / DB_NAME).write_bytes(b"")  # emptied, as a damaged WAL or a truncation leaves it
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    assert "Accepted 0 / 3" in w.project_label.text()
    assert w.project_notice.isVisible() and "2 accepted mask(s)" in w.project_notice.text()
    assert len(list((project / "masks").glob("*.png"))) == 2  # nothing deleted
    w.project_notice.action_button.click()
    qtbot.waitUntil(lambda: "Accepted 2 / 3" in w.project_label.text(), timeout=5000)
    assert "Recovered 2 accepted mask(s)" in w.project_notice.text()
    assert [w.image_list.model.row(r).status for r in range(3)] == ["accepted", "accepted", "new"]
    qtbot.waitUntil(lambda: w.controller.native_mask is not None, timeout=5000)
    assert np.array_equal(w.controller.native_mask, scenes["a_lake"][1])  # the current image shows it again


def test_window_on_a_damaged_database_saves_nothing_until_recovered(qtbot, window, data, session):
    folder, scenes = data
    accept_in_store(folder, scenes)
    project = folder / PROJECT_DIR_NAME
    (project / DB_NAME).write_bytes(b"garbage " * 1000)
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    assert not w.accept_action.isEnabled() and w.store is None
    assert "cannot be read" in w.project_label.text() and "Recover masks moves the damaged database aside" in w.project_notice.text()
    w.project_notice.action_button.click()
    qtbot.waitUntil(lambda: w.store is not None and "Accepted 2 / 3" in w.project_label.text(), timeout=10000)
    assert w.accept_action.isEnabled() and "moved the damaged database aside" in w.project_notice.text()
    assert list(project.glob(f"{DB_NAME}.damaged-*"))  # kept, never deleted


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def test_sigterm_closes_the_app_and_its_project_cleanly(data, tmp_path):
    folder, _ = data
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FLOODLABEL_DATA_DIR": str(tmp_path / "userdata"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "FLOODLABEL_CACHE_DIR": str(tmp_path / "cache")}
    app = subprocess.Popen([sys.executable, "-m", "floodlabel", "gui", str(folder), "--model", "classic"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = folder / PROJECT_DIR_NAME / DB_NAME
    deadline = time.monotonic() + 60
    while not (db.is_file() and db.stat().st_size > 0) and time.monotonic() < deadline and app.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)  # the window is up and idle
    app.send_signal(signal.SIGTERM)
    _, err = app.communicate(timeout=60)
    assert app.returncode == 128 + signal.SIGTERM, err
    wal = db.with_name(f"{DB_NAME}-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was not checkpointed: the store was not closed"
    with ProjectStore(folder) as store:  # the lock was released
        assert not store.read_only and store.counts()[Status.ACCEPTED] == 0
