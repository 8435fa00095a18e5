"""GeoTIFF maps in the annotation window (offscreen Qt, classic backend): the water area in the metrics panel, a map
over 100 MP opened through its overviews at view size (core.tiles.map_item), no-data drawn as no-data, a click
decoded into a full-size mask and refined tile by tile at full resolution (gui/window/maps/tiled_refine), accepted and
exported as a GeoTIFF with the map's transform and CRS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from floodlabel.core.geo.area import mask_area
from floodlabel.core.models.session import SegmentationSession
from floodlabel.gui.canvas.nodata import NODATA_RGB
from floodlabel.gui.panels.metrics_panel import AREA_PREFIX
from geo_maps import UTM, full_mask, lake_with_islands, left_columns, write_map
from synthetic_scenes import interior_point, make_flood_scene

BIG = (10240, 10240)  # 104.9 MP: over the 100 MP pixel limit
BIG_LAKE = lake_with_islands((5600, 5120), 3000, [(5000, 5000, 200)])
BIG_BLANK = 1024  # the first 1024 columns have no data


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(tmp_path / "cache"))
    yield


@pytest.fixture(scope="module")
def big_map(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps") / "drone"
    (root / "Image").mkdir(parents=True)
    write_map(root / "Image" / "ortho.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), BIG, BIG_LAKE,
              overviews=(2, 4, 8), blank=left_columns(BIG_BLANK))
    return root


def click(w, x, y):
    QTest.mouseClick(w.canvas.main_viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     w.canvas.widget_pos(x, y))


def wait_native(qtbot, w, timeout=60000):
    qtbot.waitUntil(lambda: w.controller.native_mask is not None and w.controller.native_ready()
                    and not w.controller.decoder.pending, timeout=timeout)
    QTest.qWait(50)


def test_a_photo_shows_its_water_area_in_pixels_without_a_crs(qtbot, window, tmp_path):
    root = tmp_path / "photos"
    (root / "Image").mkdir(parents=True)
    image, gt = make_flood_scene(240, 320, seed=0, kind="lake")
    Image.fromarray(image).save(root / "Image" / "lake.png")
    w = window(root, SegmentationSession.open("classic"))
    qtbot.waitUntil(lambda: w.controller.embedding is not None, timeout=20000)
    assert w.metrics_panel.area_label.text() == AREA_PREFIX + "—"
    click(w, *interior_point(gt))
    wait_native(qtbot, w)
    mask = w.controller.native_mask
    assert mask.any()
    assert w.metrics_panel.area_label.text() == f"{AREA_PREFIX}{int(mask.sum()):,} px (no CRS: area in pixels)"


def test_a_small_geotiff_shows_hectares_and_its_nodata(qtbot, window, tmp_path):
    root = tmp_path / "small"
    (root / "Image").mkdir(parents=True)
    lake = lake_with_islands((300, 200), 120, [])
    write_map(root / "Image" / "map.tif", UTM, Affine(0.5, 0, 500000, 0, -0.5, 4000000), (640, 400), lake,
              blank=left_columns(64))
    w = window(root, SegmentationSession.open("classic"))
    qtbot.waitUntil(lambda: w.controller.embedding is not None, timeout=20000)
    item = w.controller.item
    assert item.geo is not None and item.valid is not None and not item.valid[:, :64].any()
    shown = w.canvas._image_item.image
    assert {tuple(v) for v in shown[:, :64].reshape(-1, 3)} == set(NODATA_RGB)  # checkerboard, not black
    assert np.array_equal(shown[:, 64:], item.image[:, 64:])
    click(w, 300, 200)
    wait_native(qtbot, w)
    mask = w.controller.native_mask
    area = mask_area(mask, item.geo)
    assert area.m2 == pytest.approx(mask.sum() * 0.25)
    assert w.metrics_panel.area_label.text() == AREA_PREFIX + area.describe()
    assert "ha (" in area.describe() and "EPSG:32633" in area.describe()


def test_a_map_over_100_mp_opens_at_view_size_and_is_accepted_and_exported(qtbot, window, big_map, tmp_path):
    from floodlabel.core.export.project_export import export_project
    from floodlabel.core.store.project_store import ProjectStore
    from floodlabel.core.tiles.map_item import MapItem

    w = window(big_map, SegmentationSession.open("classic"))
    qtbot.waitUntil(lambda: w.controller.embedding is not None, timeout=60000)
    item = w.controller.item
    assert isinstance(item, MapItem)
    assert item.image.shape == (2048, 2048, 3) and item.original_size == (BIG[1], BIG[0])  # never decoded whole
    assert w.canvas.image_size == (BIG[1], BIG[0])
    shown = w.canvas._image_item.image
    blank_view = BIG_BLANK * 2048 // BIG[0]
    assert {tuple(v) for v in shown[:, : blank_view - 1].reshape(-1, 3)} == set(NODATA_RGB)
    assert not item.valid[:, : blank_view - 1].any() and item.valid[:, blank_view + 1:].all()

    click(w, 5600, 4000)  # in the lake, full-resolution map pixels
    wait_native(qtbot, w)
    assert w.controller.native_mask.shape == (BIG[1], BIG[0])  # the view-level mask, upscaled (or already refined)
    # the full-resolution tiled refine (core.tiles.tiled, tiles read from the file) replaces it
    qtbot.waitUntil(lambda: w.controller.fixed_mask is not None and not w.controller.refiner.running, timeout=180000)
    wait_native(qtbot, w)
    assert "Full resolution:" in w.statusBar().currentMessage() and " tiles in " in w.statusBar().currentMessage()
    mask = w.controller.native_mask
    assert mask.shape == (BIG[1], BIG[0]) and np.array_equal(mask, w.controller.fixed_mask)  # no strokes
    truth = full_mask(BIG_LAKE, BIG)
    iou = np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum()
    assert iou > 0.99, iou
    count, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    assert count - 1 == 1  # one lake across the tile seams
    area = mask_area(mask, item.geo)
    assert area.m2 == pytest.approx(mask.sum() * 0.01)
    assert w.metrics_panel.area_label.text() == AREA_PREFIX + area.describe()
    # the overlay on screen is the view-size mask
    assert w.canvas.overlay_array().shape == (2048, 2048)

    QTest.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Accepted 1 / 1" in w.project_label.text(), timeout=60000)
    w.close()
    with ProjectStore(big_map, read_only=True) as store:
        record = store.record("Image/ortho.tif")
        assert record.accepted and np.array_equal(record.load_mask(), mask)
        result = export_project(store, tmp_path / "out", formats=("geotiff", "gpkg"))
    assert result.exported == 1
    assert result.areas[0][1].m2 == pytest.approx(area.m2)
    import pyogrio

    info = pyogrio.read_info(result.files["gpkg"][0])
    assert info["features"] == 1 and "32633" in info["crs"]  # one lake, in the map's CRS
    with rasterio.open(result.files["geotiff"][0]) as ds:
        assert (ds.width, ds.height) == BIG and ds.crs == UTM
        assert ds.transform == Affine(0.1, 0, 500000, 0, -0.1, 4000000)
        assert np.array_equal(ds.read(1, window=rasterio.windows.Window(5000, 3500, 1000, 1000)).astype(bool),
                              mask[3500:4500, 5000:6000])


def test_auto_on_a_map_gets_view_frame_points_and_its_mask_at_the_full_size(qtbot, window, tmp_path, monkeypatch):
    """Auto runs on a map's view image: the prompt's points are scaled to the view frame, its mask upscaled."""
    import floodlabel.core.models.auto_water as auto_water

    root = tmp_path / "auto"
    (root / "Image").mkdir(parents=True)
    size = (4200, 4100)  # 17.2 MP: a MapItem (over 4096²), view 2048 x 1999
    write_map(root / "Image" / "map.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), size,
              lake_with_islands((2100, 2050), 900, []))
    seen = []

    def fake_auto(session, image, embedding, prompt, **kwargs):
        seen.append((image.shape, prompt.points.copy()))
        mask = np.zeros(image.shape[:2], bool)
        mask[100:200, 300:500] = True
        return mask

    monkeypatch.setattr(auto_water, "auto_water_mask", fake_auto)
    w = window(root, SegmentationSession.open("classic"))
    qtbot.waitUntil(lambda: w.controller.embedding is not None, timeout=60000)
    c = w.controller
    c.refiner.wanted = lambda item: False  # only Auto sets the fixed mask here
    c.add_point(2100.0, 2050.0, True)
    wait_native(qtbot, w)
    c.run_auto()
    qtbot.waitUntil(lambda: c.fixed_mask is not None, timeout=30000)
    view_shape, points = seen[0]
    assert view_shape == (1999, 2048, 3)
    assert points[0].tolist() == pytest.approx([2100 * 2048 / 4200, 2050 * 1999 / 4100])
    assert c.fixed_mask.shape == (4100, 4200)
    wait_native(qtbot, w)
    assert c.native_mask.shape == (4100, 4200) and c.native_mask[150 * 4100 // 1999, 400 * 4200 // 2048]


def test_picking_a_candidate_after_the_refine_shows_that_candidate(qtbot, window, tmp_path):
    """The refined mask is each tile's best; choosing one of the view-level candidates shows that one instead."""
    root = tmp_path / "pick"
    (root / "Image").mkdir(parents=True)
    write_map(root / "Image" / "map.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), (4200, 4100),
              lake_with_islands((2100, 2050), 900, []))
    w = window(root, SegmentationSession.open("classic"))
    qtbot.waitUntil(lambda: w.controller.embedding is not None, timeout=60000)
    c = w.controller
    c.add_point(2100.0, 2050.0, True)
    qtbot.waitUntil(lambda: c.fixed_mask is not None and not c.refiner.running, timeout=120000)
    wait_native(qtbot, w)
    c.choose_candidate(0)
    assert c.fixed_mask is None
    qtbot.waitUntil(lambda: c.native_ready() and c.native_mask is not None and not c.decoder.pending, timeout=30000)
    QTest.qWait(50)
    view = c.shown.prediction.mask(0)
    from floodlabel.core.tiles.view_frame import upscale_mask

    assert np.array_equal(c.native_mask, upscale_mask(view, (4100, 4200)))


def test_compare_on_a_map_decodes_the_same_prompt_in_the_view_frame(qtbot, window, tmp_path):
    """Model B decodes A's prompt (full frame) on the map's view embedding through the same frame change as A: with
    the same backend, B's mask is A's. (It decoded the full-frame point on the view embedding, off the lake.)"""
    root = tmp_path / "compare"
    (root / "Image").mkdir(parents=True)
    write_map(root / "Image" / "map.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), (4200, 4100),
              lake_with_islands((2900, 2900), 700, []))
    w = window(root, SegmentationSession.open("classic"))
    qtbot.waitUntil(lambda: w.controller.embedding is not None, timeout=60000)
    c = w.controller
    c.refiner.wanted = lambda item: False  # the view-level decode only, for A and B alike
    w.compare.set_session(SegmentationSession.open("classic"))
    c.add_point(2900.0, 2900.0, True)  # outside the 2048 px view's own frame: only a frame change finds the lake
    wait_native(qtbot, w)
    qtbot.waitUntil(lambda: w.compare.result is not None, timeout=30000)
    a_view = c.shown.prediction.mask(c.shown.prediction.best)
    b_view = w.compare.result.view_mask
    assert b_view.shape == a_view.shape and a_view.any()
    assert (b_view == a_view).mean() > 0.999
    # the list's A<->B agreement: B's view mask against A's native one, measured in a worker (a map's is large)
    qtbot.waitUntil(lambda: w.image_list.model.row(0).agreement is not None, timeout=30000)
    assert w.image_list.model.row(0).agreement > 0.99
    assert w.models.agreement_call is not None  # it was the worker's
