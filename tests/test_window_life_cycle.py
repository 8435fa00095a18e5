"""The window's project life cycle (gui/window/life_cycle): another folder's project opens and the previous one closes
off the UI thread, and neither that nor closing the window loses an accept: a map accepted during its
full-resolution refine gets its full-resolution mask saved first (bounded, then its view-level mask stays and the
window says so), and an accept pressed before its mask was ready is saved for its own image when the user moves on,
never for the image on screen. Offscreen Qt, classic backend; the map set-up of test_geo_accept_refine."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import floodlabel.gui.window.life_cycle.project_opener as project_opener
import floodlabel.gui.window.project_actions as project_actions
import floodlabel.gui.window.segmentation_controller as segmentation_controller
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.store.project_store import ProjectStore
from geo_maps import full_mask
from test_geo_accept_refine import LAKE, SIZE, gated, iou, two_images, view_level_accept  # noqa: F401 (fixtures)

MAP = "Image/a_map.tif"


def photo_folder(root, names=("c_one", "d_two")):
    (root / "Image").mkdir(parents=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((64, 80, 3), 60 + 40 * i, np.uint8)).save(root / "Image" / f"{name}.png")
    return root


def saved_mask(folder, rel=MAP):
    with ProjectStore(folder, read_only=True) as store:
        record = store.record(rel)
        return None if record is None or not record.accepted else record.load_mask()


def writable_again(folder) -> bool:
    """The project's writer lock was released: a new store opens it writable."""
    with ProjectStore(folder) as store:
        return not store.read_only


def test_opening_folders_in_turn_reopens_each_project_writable(qtbot, window, tmp_path):
    a, b = photo_folder(tmp_path / "a"), photo_folder(tmp_path / "b", ("e_three",))
    w = window(a, SegmentationSession.open("classic"))
    qtbot.waitUntil(lambda: w.controller.item is not None, timeout=20000)
    first = w.store
    for folder, count in ((a, 2), (b, 1), (a, 2), (b, 1)):  # the same folder again first: it waits for its close
        w.open_folder(folder)
        assert w.project.opening and w.store is None and not w.accept_action.isEnabled()  # the worker opens it
        qtbot.waitUntil(lambda: w.store is not None and w.controller.item is not None, timeout=20000)
        assert not w.store.read_only and w.store.project_dir.parent == folder  # the old close released the lock first
        assert w.image_list.model.rowCount() == count and w.accept_action.isEnabled()
    assert first.closing is not None and first.closing.is_set()
    qtbot.waitUntil(lambda: not w.project.opener.closing, timeout=10000)  # every old project closed


@pytest.mark.slow  # about 10 s: the classic refine of 4 tiles
def test_closing_the_window_waits_for_the_full_resolution_accept(qtbot, window, two_images, gated):
    gate, _ = gated
    w = window(two_images, SegmentationSession.open("classic"))
    coarse = view_level_accept(qtbot, w)
    threading.Timer(0.5, gate.set).start()  # the refine goes on while the window waits in its close
    w.close()
    saved = saved_mask(two_images)
    assert not np.array_equal(saved, coarse) and iou(saved, full_mask(LAKE, SIZE)) > 0.99
    assert writable_again(two_images)


def test_closing_past_the_bound_keeps_the_view_level_accept_and_says_so(qtbot, window, two_images, gated,
                                                                        monkeypatch):
    gate, fail = gated
    monkeypatch.setattr(project_opener, "PENDING_WAIT_S", 0.5)
    monkeypatch.setattr(project_actions, "PENDING_WAIT_S", 0.5)
    real_give_up = project_actions.ProjectActions._give_up

    def give_up(self, link, rels):
        real_give_up(self, link, rels)
        fail.set()  # the refine, cancelled by the close, ends at once
        gate.set()

    monkeypatch.setattr(project_actions.ProjectActions, "_give_up", give_up)
    w = window(two_images, SegmentationSession.open("classic"))
    coarse = view_level_accept(qtbot, w)
    w.close()
    said = w.project_notice.label.text()  # (the notice of a closed window: hidden with it)
    assert f"The full-resolution mask of {MAP} was not finished in 0.5 s" in said
    assert "view-level mask (upscaled to full size) is the one saved" in said
    assert np.array_equal(saved_mask(two_images), coarse)  # the accept is never lost
    assert writable_again(two_images)


@pytest.mark.slow
def test_another_folder_opens_at_once_and_the_old_project_closes_after_its_full_resolution_accept(
        qtbot, window, two_images, gated, tmp_path):
    gate, _ = gated
    w = window(two_images, SegmentationSession.open("classic"))
    coarse = view_level_accept(qtbot, w)
    old = w.store
    other = photo_folder(tmp_path / "other")
    w.open_folder(other)
    qtbot.waitUntil(lambda: w.store is not None and w.controller.item is not None, timeout=20000)
    assert w.store.project_dir.parent == other and not w.store.read_only
    assert w.project.opener.closing == [old] and old.closing is None  # open until it saved what it owes
    gate.set()
    qtbot.waitUntil(lambda: not w.project.opener.closing, timeout=120000)
    assert old.closing.is_set()
    saved = saved_mask(two_images)
    assert not np.array_equal(saved, coarse) and iou(saved, full_mask(LAKE, SIZE)) > 0.99
    assert writable_again(two_images)


def test_an_accept_before_its_mask_is_saved_for_its_own_image_after_moving_on(qtbot, window, two_images, gated,
                                                                            monkeypatch):
    gate, fail = gated
    decoding = threading.Event()
    real = segmentation_controller.decode_prompt

    def slow_decode(*args, **kwargs):  # the window's own decode of the map's prompt waits
        decoding.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(segmentation_controller, "decode_prompt", slow_decode)
    w = window(two_images, SegmentationSession.open("classic"))
    c = w.controller
    qtbot.waitUntil(lambda: c.embedding is not None and c.row == 0, timeout=60000)
    c.add_point(2100.0, 2050.0, True)
    assert not c.native_ready()
    QTest.keyClick(w, Qt.Key.Key_Return)  # before the full-size mask: the accept waits for it
    assert w.project.waiting is not None and c.row == 0
    w.next_image()  # the user moves on before it came
    qtbot.waitUntil(lambda: c.row == 1 and c.item is not None, timeout=20000)
    qtbot.waitUntil(lambda: "Accepted 1 / 2" in w.project_label.text(), timeout=30000)
    saved = saved_mask(two_images)
    assert saved is not None and saved.shape == (SIZE[1], SIZE[0]) and iou(saved, full_mask(LAKE, SIZE)) > 0.9
    assert w.project.refined.pending == [MAP]  # its full-resolution refine follows, for the map
    decoding.set()  # the map's own decode ends late, while the photo is on screen
    qtbot.waitUntil(lambda: c.embedding is not None, timeout=20000)
    QTest.qWait(300)
    w.store.wait_idle()
    assert saved_mask(two_images, "Image/b_photo.png") is None and c.row == 1  # never accepted for the photo
    assert w.project.waiting is None
    fail.set()
    gate.set()
    qtbot.waitUntil(lambda: not w.project.refined.pending, timeout=60000)
    assert np.array_equal(saved_mask(two_images), saved)  # a failed refine keeps that accept
