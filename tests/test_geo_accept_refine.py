"""Accept on a map before its full-resolution refine came in (gui/window/maps/tiled_refine.RefinedAccepts): the accept is
saved at once with the view-level mask, the refine keeps running while the next image is shown, and its
full-resolution mask is then saved over the first one; an edit of that image meanwhile wins, and a failed refine
leaves the view-level accept with a message. Offscreen Qt, classic backend, a 4200 x 4100 GeoTIFF (a MapItem)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from affine import Affine
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import floodlabel.gui.window.maps.tiled_refine as tiled_refine
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.store.project_store import ProjectStore
from geo_maps import UTM, full_mask, lake_with_islands, write_map

SIZE = (4200, 4100)  # (width, height): 17.2 MP, a MapItem with a 2048 x 1999 view
LAKE = lake_with_islands((2100, 2050), 900, [(1900, 1900, 120)])


@pytest.fixture
def gated(monkeypatch):
    """Tile reads of the refine wait for `gate` (set it to let the refine go on); `fail` set makes them raise."""
    gate, fail = threading.Event(), threading.Event()
    real = tiled_refine.map_reader

    def map_reader(path, stretch):
        read = real(path, stretch)

        def gated_read(window):
            if not gate.wait(60):
                raise TimeoutError("test gate never opened")
            if fail.is_set():
                raise OSError("the map's drive went away")
            return read(window)

        return gated_read

    monkeypatch.setattr(tiled_refine, "map_reader", map_reader)
    yield gate, fail
    gate.set()  # never leave a refine thread waiting


@pytest.fixture
def two_images(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    (root / "Image").mkdir(parents=True)
    write_map(root / "Image" / "a_map.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), SIZE, LAKE)
    Image.fromarray(np.full((96, 128, 3), 120, np.uint8)).save(root / "Image" / "b_photo.png")
    return root


def view_level_accept(qtbot, w):
    """Click the lake, wait for the view-level mask (the refine then waits at the gate), press Enter: the window
    moves on to the photo. Returns the view-level mask that was shown."""
    c = w.controller
    qtbot.waitUntil(lambda: c.embedding is not None and c.row == 0, timeout=60000)
    c.add_point(2100.0, 2050.0, True)
    qtbot.waitUntil(lambda: c.native_mask is not None and c.native_ready() and not c.decoder.pending,
                    timeout=60000)
    QTest.qWait(50)
    assert c.refiner.running and c.fixed_mask is None  # the refine waits at the gate
    coarse = c.native_mask.copy()
    QTest.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Accepted 1 / 2" in w.project_label.text(), timeout=30000)
    assert c.row == 1  # the photo is shown while the map's refine goes on
    assert w.project.refined.pending == ["Image/a_map.tif"]
    with ProjectStore(w.folder, read_only=True) as store:
        assert np.array_equal(store.record("Image/a_map.tif").load_mask(), coarse)  # saved at once, nothing lost
    return coarse


def iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


@pytest.mark.slow  # about 10 s: the classic refine of 4 tiles
def test_an_accept_during_the_refine_saves_the_full_resolution_mask_when_it_ends(qtbot, window, two_images, gated):
    gate, _ = gated
    w = window(two_images, SegmentationSession.open("classic"))
    coarse = view_level_accept(qtbot, w)
    saved_rels = []
    w.project.refined.saved.connect(saved_rels.append)
    gate.set()
    qtbot.waitUntil(lambda: not w.project.refined.pending and not w.controller.refiner.kept, timeout=120000)
    w.store.wait_idle()
    QTest.qWait(100)
    assert saved_rels == ["Image/a_map.tif"]
    with ProjectStore(two_images, read_only=True) as store:
        record = store.record("Image/a_map.tif")
        saved = record.load_mask()
        assert record.accepted and record.annotation_state["prompt"]["points"] == [[2100.0, 2050.0]]
    truth = full_mask(LAKE, SIZE)
    assert saved.shape == (SIZE[1], SIZE[0]) and not np.array_equal(saved, coarse)
    assert iou(saved, truth) > 0.99 and iou(saved, truth) > iou(coarse, truth)
    assert not saved[1950, 1950]  # the island stays out of the water at full resolution


@pytest.mark.slow
def test_an_edit_after_the_accept_wins_over_the_late_full_resolution_mask(qtbot, window, two_images, gated):
    gate, _ = gated
    w = window(two_images, SegmentationSession.open("classic"))
    coarse = view_level_accept(qtbot, w)
    w.select_image(0)
    c = w.controller
    qtbot.waitUntil(lambda: c.row == 0 and c.annotation is not None and c.embedding is not None, timeout=30000)
    c.add_point(300.0, 300.0, False)  # the user changes the accepted image: its late mask must not overwrite this
    assert w.project.refined.pending == []
    gate.set()
    qtbot.waitUntil(lambda: not c.refiner.kept, timeout=120000)
    w.project.flush()
    w.store.wait_idle()
    QTest.qWait(100)
    with ProjectStore(two_images, read_only=True) as store:
        record = store.record("Image/a_map.tif")
        assert np.array_equal(record.load_mask(), coarse)
        assert len(record.annotation_state["prompt"]["points"]) == 2  # the edit, not the accept's state


def test_a_failed_refine_keeps_the_view_level_accept_and_says_so(qtbot, window, two_images, gated):
    gate, fail = gated
    w = window(two_images, SegmentationSession.open("classic"))
    coarse = view_level_accept(qtbot, w)
    fail.set()
    gate.set()
    qtbot.waitUntil(lambda: not w.project.refined.pending, timeout=60000)
    assert "full-resolution mask of Image/a_map.tif could not be made" in w.message_label.text()
    assert "view-level mask is saved" in w.message_label.text()
    with ProjectStore(two_images, read_only=True) as store:
        assert np.array_equal(store.record("Image/a_map.tif").load_mask(), coarse)
