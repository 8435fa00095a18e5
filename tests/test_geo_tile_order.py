"""Tiles in view first (core.tiles.tiled: decode order, prefetch_order) and the window's prefetch of the tiles
around a zoomed-in map view (gui/window/maps/tiled_refine.TiledRefiner.prefetch), classic backend."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from PySide6.QtCore import QRectF

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.tiles.tiled import PREFETCH_MAX, PREFETCH_VIEW_MAX, TiledDecoder, array_reader
from geo_maps import LAND, UTM, WATER, lake_with_islands, write_map


@pytest.fixture(scope="module")
def classic():
    return SegmentationSession.open("classic")


def test_a_box_over_four_tiles_decodes_the_one_in_view_first(classic):
    image = np.empty((2048, 2048, 3), np.uint8)
    image[:] = LAND
    image[700:1400, 700:1400] = WATER
    decoder = TiledDecoder(classic, array_reader(image), (2048, 2048), "four")
    box = Prompt(np.zeros((0, 2), np.float32), np.zeros(0, np.int32), np.array([650, 650, 1450, 1450], np.float32))
    plain = decoder.decode(box)
    assert [t.core[:2] for t in plain.tiles] == [(0, 0), (1024, 0), (0, 1024), (1024, 1024)]
    seen = decoder.decode(box, visible=(1300.0, 1200.0, 1600.0, 1500.0))  # the user looks at the bottom-right tile
    assert seen.tiles[0].core[:2] == (1024, 1024)
    assert np.array_equal(seen.mask, plain.mask)  # the order changes nothing but the order


def test_prefetch_order_is_the_view_then_a_ring_and_nothing_zoomed_out(classic):
    decoder = TiledDecoder(classic, array_reader(np.zeros((8, 8, 3), np.uint8)), (10240, 10240), "k")
    order = decoder.prefetch_order((5200.0, 5300.0, 5900.0, 5800.0))  # inside the tile at (5120, 5120)
    cores = [decoder.tiles[i].core[:2] for i in order]
    assert cores[0] == (5120, 5120) and len(cores) == 9  # the tile in view, then the 8 around it
    assert set(cores) == {(5120 + dx, 5120 + dy) for dx in (-1024, 0, 1024) for dy in (-1024, 0, 1024)}
    assert decoder.prefetch_order((0.0, 0.0, 10240.0, 10240.0)) == []  # 100 tiles in view: too far out
    assert decoder.prefetch_order((0.0, 0.0, 3000.0, 3000.0)) == []  # 9 tiles in view
    assert PREFETCH_VIEW_MAX < 9
    two_by_two = decoder.prefetch_order((1100.0, 1100.0, 2100.0, 2100.0))
    assert len(two_by_two) == PREFETCH_MAX and set(two_by_two[:4]) == set(decoder.in_view((1100, 1100, 2100, 2100)))


def test_a_zoomed_in_map_prefetches_its_tiles_and_the_click_finds_them(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "prefetch"
    (root / "Image").mkdir(parents=True)
    write_map(root / "Image" / "map.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), (4200, 4100),
              lake_with_islands((2600, 2600), 250, []))
    w = window(root, SegmentationSession.open("classic"))
    c = w.controller
    qtbot.waitUntil(lambda: c.embedding is not None, timeout=60000)
    w.canvas.main_view.setRange(QRectF(2300, 2300, 600, 600), padding=0)  # the lake, inside tile (2048, 2048)
    qtbot.waitUntil(lambda: c.refiner.prefetched >= 1 and not c.refiner.prefetching, timeout=60000)
    decoder = c.refiner._decoder
    assert decoder.is_cached(decoder.tiles.index(next(t for t in decoder.tiles if t.core[:2] == (2048, 2048))))
    embeds = decoder.embeds
    c.add_point(2600.0, 2600.0, True)
    qtbot.waitUntil(lambda: c.fixed_mask is not None and not c.refiner.running, timeout=60000)
    assert decoder.embeds == embeds  # every tile the refine needed was prefetched


def test_merge_levels_is_np_where_in_place():
    from floodlabel.core.tiles.tiled import merge_levels

    rng = np.random.default_rng(0)
    owned = np.zeros((3000, 2500), bool)
    owned[1024:2048, :] = True
    refined = rng.random(owned.shape) > 0.5
    refined &= owned  # a TiledResult.mask is False outside the decoded cores
    coarse = rng.random(owned.shape) > 0.5
    expected = np.where(owned, refined, coarse)
    out = merge_levels(refined, owned, coarse, strip=700)
    assert out is refined and np.array_equal(out, expected)
