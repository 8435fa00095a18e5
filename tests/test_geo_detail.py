"""A large map zoomed in past its 2048 px view image: the visible window is read from the file at full resolution
in a worker and drawn over the view, with the mask at that resolution (core.tiles.detail, gui/window/maps/map_detail).
Offscreen Qt, classic backend, a 4200 x 4100 GeoTIFF (view 2048 x 1999)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from PySide6.QtCore import QRectF
from PySide6.QtTest import QTest

from floodlabel.core.geo.raster import read_map
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.tiles.detail import DetailWindow, detail_mask, detail_window
from geo_maps import UTM, lake_with_islands, write_map

SIZE = (4200, 4100)


@pytest.fixture
def map_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "detail"
    (root / "Image").mkdir(parents=True)
    write_map(root / "Image" / "map.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), SIZE,
              lake_with_islands((2100, 2050), 900, [(2500, 2000, 40)]))
    return root


def zoom(w, qtbot, x0, y0, width, height):
    with qtbot.waitSignal(w.map_detail.shown, timeout=20000) as blocker:
        w.canvas.main_view.setRange(QRectF(x0, y0, width, height), padding=0)
    return blocker.args[0]


def test_zooming_in_on_a_map_reads_the_visible_window_at_full_resolution(qtbot, window, map_folder):
    w = window(map_folder, SegmentationSession.open("classic"))
    c = w.controller
    qtbot.waitUntil(lambda: c.embedding is not None, timeout=60000)
    c.refiner.wanted = lambda item: False  # the view-level mask (upscaled) is what the detail crops here
    c.add_point(2100.0, 2050.0, True)
    qtbot.waitUntil(lambda: c.native_mask is not None and c.native_ready() and not c.decoder.pending,
                    timeout=60000)
    QTest.qWait(100)
    assert w.canvas.detail_window is None  # fitted: the view image is enough

    window_ = zoom(w, qtbot, 2900, 1950, 150, 150)  # the lake's east shore and the island, far past the view
    c0, r0, width, height = window_
    assert c0 <= 2900 and r0 <= 1950 and c0 + width >= 3050 and r0 + height >= 2100
    shown = w.canvas._detail_item.image
    truth = read_map(map_folder / "Image" / "map.tif", window=window_).rgb
    assert shown.shape == truth.shape  # full resolution: one detail pixel per map pixel at this zoom
    assert np.array_equal(shown, truth)
    overlay = w.canvas._detail_overlay.image
    assert overlay.shape == shown.shape[:2]
    assert np.array_equal(overlay.view(bool), c.native_mask[r0:r0 + height, c0:c0 + width])

    window_ = zoom(w, qtbot, 2700, 1800, 500, 400)  # less zoom: decimated to about the screen, still past the view
    c0, r0, width, height = window_
    shown = w.canvas._detail_item.image
    assert shown.shape[0] / height > 1999 / 4100 and shown.shape[1] / width > 2048 / 4200
    assert np.array_equal(shown, read_map(map_folder / "Image" / "map.tif", window=window_,
                                          max_side=max(shown.shape[:2])).rgb)
    detail = DetailWindow(window_, shown.shape[:2])
    assert np.array_equal(w.canvas._detail_overlay.image.view(bool),
                          detail_mask(c.native_mask, (4100, 4200), detail))

    reads = w.map_detail._request
    w.canvas.main_view.setRange(QRectF(2695, 1795, 500, 400), padding=0)  # a small pan: the same window, no read
    QTest.qWait(300)
    assert w.canvas.detail_window == window_ and w.map_detail._request == reads

    with qtbot.waitSignal(w.map_detail.shown, timeout=20000) as blocker:
        w.canvas.fit()
    assert blocker.args[0] is None and w.canvas.detail_window is None
    assert w.canvas._detail_item.image is None


def test_a_stroke_while_zoomed_in_draws_on_the_detail_and_the_mask_follows(qtbot, window, map_folder):
    from floodlabel.core.annotation.annotation import Stroke

    w = window(map_folder, SegmentationSession.open("classic"))
    c = w.controller
    qtbot.waitUntil(lambda: c.embedding is not None and c.annotation is not None, timeout=60000)
    c0, r0, width, height = zoom(w, qtbot, 1000, 1000, 400, 300)
    assert w.canvas._detail_overlay.image is None  # no mask yet
    w.canvas.draw_stroke_segment("paint", 20, (1100.0, 1100.0), (1200.0, 1100.0))
    live = w.canvas._detail_overlay.image
    sy, sx = live.shape[0] / height, live.shape[1] / width  # detail pixels per map pixel
    assert live[int((1100 - r0) * sy), int((1150 - c0) * sx)] == 1 and live[int((1200 - r0) * sy),
                                                                            int((1150 - c0) * sx)] == 0
    c.add_stroke(Stroke("paint", 20.0, np.array([[1100, 1100], [1200, 1100]], np.float32)))
    qtbot.waitUntil(lambda: c.native_mask is not None and c.native_mask[1100, 1150], timeout=20000)
    QTest.qWait(50)
    detail = DetailWindow((c0, r0, width, height), live.shape)
    assert np.array_equal(w.canvas._detail_overlay.image.view(bool), detail_mask(c.native_mask, (4100, 4200), detail))


def test_the_gt_and_compare_mode_s_b_mask_are_drawn_at_the_detail_s_resolution(qtbot, window, map_folder):
    from PIL import Image

    from floodlabel.core.tiles.view_frame import upscale_mask
    from geo_maps import full_mask

    gt = full_mask(lake_with_islands((2100, 2050), 880, [(2500, 2000, 30)]), SIZE)  # not quite the image's lake
    (map_folder / "Mask").mkdir()
    Image.fromarray(gt.astype(np.uint8) * 255).save(map_folder / "Mask" / "map.png")
    w = window(map_folder, SegmentationSession.open("classic"))
    c = w.controller
    qtbot.waitUntil(lambda: c.embedding is not None and c.item is not None and c.item.gt is not None, timeout=60000)
    c.refiner.wanted = lambda item: False
    c.add_point(2100.0, 2050.0, True)
    qtbot.waitUntil(lambda: c.native_mask is not None and c.native_ready() and not c.decoder.pending,
                    timeout=60000)
    window_ = zoom(w, qtbot, 2900, 1950, 150, 150)  # one detail pixel per map pixel
    c0, r0, width, height = window_
    crop = np.s_[r0:r0 + height, c0:c0 + width]
    gt_shown = w.canvas._gt_detail_overlay.image
    assert gt_shown.shape == (height, width) and np.array_equal(gt_shown.view(bool), gt[crop])  # the file's pixels
    assert w.canvas._detail_outline.image.any() and w.canvas._compare_detail.image is None

    w.compare.set_session(SegmentationSession.open("classic"))  # compare mode: B decodes the same prompt
    qtbot.waitUntil(lambda: w.canvas._compare_detail.image is not None, timeout=60000)
    b_full = upscale_mask(w.compare.result.view_mask, c.item.original_size)  # B's mask at the map's size
    b_shown = w.canvas._compare_detail.image.view(bool)
    assert b_shown.shape == (height, width) and b_shown.any()
    assert (b_shown != b_full[crop]).mean() < 1e-3  # the same up to the interpolations' rounding on the shore
    assert not w.canvas._gt_detail_overlay.isVisible()  # the right view shows B instead of the GT
    diff = w.canvas._detail_diff.image.view(bool)
    assert np.array_equal(diff, c.native_mask[crop] ^ b_shown)
    w.compare.set_session(None)
    qtbot.waitUntil(lambda: w.canvas._compare_detail.image is None, timeout=10000)
    assert w.canvas._gt_detail_overlay.isVisible() and w.canvas._detail_diff.image is None


def test_detail_window_rules():
    full, view = (20000, 20000), (2048, 2048)
    assert detail_window((0, 0, 20000, 20000), full, view, (1000, 700)) is None  # zoomed out
    assert detail_window((0, 0, 9766, 9766), full, view, (1000, 1000)) is None  # 1:1 of the overview
    d = detail_window((5000, 5000, 6000, 5600), full, view, (1000, 600))
    c0, r0, width, height = d.window
    assert c0 % 256 == 0 and r0 % 256 == 0 and c0 <= 4750 and c0 + width >= 6250  # margin, snapped
    assert d.shape[1] <= 1.5 * 1000 + 2 * 256 and d.shape[0] <= 1.5 * 600 + 2 * 256  # 1.5x the screen + snap
    assert detail_window((5010, 5010, 6010, 5610), full, view, (1000, 600)) == d  # a small pan: the same window
    # a view-size mask cropped into a window agrees with its full-size upscaling cropped there
    import cv2

    mask = np.zeros(view, np.uint8)
    mask[500:560, 500:600] = 1
    mask[700:900, 650:655] = 1
    big = cv2.resize(mask, (5000, 4000), interpolation=cv2.INTER_NEAREST).astype(bool)
    small = DetailWindow((1024, 768, 1536, 1280), (640, 768))
    agree = detail_mask(mask.astype(bool), (4000, 5000), small) == detail_mask(big, (4000, 5000), small)
    assert agree.mean() > 0.995
    # B's view-size mask inside a window, as its bilinear full-size upscale has it (without making the 5000 x 4000
    # mask; here exact at one detail pixel per map pixel, elsewhere up to the rounding of a few shore pixels)
    from floodlabel.core.tiles.detail import upscaled_detail_mask
    from floodlabel.core.tiles.view_frame import upscale_mask

    smooth = upscale_mask(mask.astype(bool), (4000, 5000))
    one = DetailWindow((1024, 768, 1536, 1280), (1280, 1536))
    assert np.array_equal(upscaled_detail_mask(mask.astype(bool), (4000, 5000), one),
                          smooth[768:768 + 1280, 1024:1024 + 1536])
