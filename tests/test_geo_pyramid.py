"""core.geo.pyramid: a large map opens at view size from its overviews or a cached preview (made once), with the
full map's GeoInfo; tiles own every pixel exactly once."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from geo_maps import UTM, lake_with_islands, write_map

from floodlabel.core.geo import pyramid
from floodlabel.core.geo.pyramid import open_map, preview_path, tile_windows
from floodlabel.core.geo.raster import read_map

TRANSFORM = Affine(0.1, 0, 500_000, 0, -0.1, 5_000_000)


@pytest.fixture
def small_preview(monkeypatch):
    monkeypatch.setattr(pyramid, "PREVIEW_SIDE", 512)


def test_a_map_without_overviews_gets_a_cached_preview(tmp_path, small_preview, monkeypatch):
    path = tmp_path / "map.tif"
    write_map(path, UTM, TRANSFORM, (3000, 2000), lake_with_islands((1500, 1000), 800, [(1400, 900, 200)]))
    view, stretch = open_map(path, view_side=256, cache_root=tmp_path / "cache")
    assert view.rgb.shape == (171, 256, 3) and view.info.width == 3000 and view.info.crs == UTM
    assert view.scale == pytest.approx((3000 / 256, 2000 / 171))
    assert view.transform.a == pytest.approx(0.1 * 3000 / 256) and view.transform.c == 500_000
    assert tuple(view.rgb[85, 128]) == (90, 110, 70) and tuple(view.rgb[85, 60]) == (40, 60, 120)
    cached = preview_path(path, tmp_path / "cache")
    assert cached.is_file() and stretch.limits is None

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the preview is made once")

    monkeypatch.setattr(pyramid, "build_preview", no_rebuild)
    again, _ = open_map(path, view_side=256, cache_root=tmp_path / "cache")
    assert np.array_equal(again.rgb, view.rgb)


def test_a_map_with_overviews_is_read_directly(tmp_path, small_preview):
    path = tmp_path / "map.tif"
    write_map(path, UTM, TRANSFORM, (3000, 2000), lake_with_islands((1500, 1000), 800, []), overviews=(2, 4, 8))
    view, _ = open_map(path, view_side=256, cache_root=tmp_path / "cache")
    assert view.rgb.shape == (171, 256, 3) and not (tmp_path / "cache").exists()


def test_tiles_own_every_pixel_once_and_read_with_a_halo(tmp_path):
    tiles = tile_windows(2500, 1100, tile=1024, halo=128)
    owned = np.zeros((1100, 2500), np.int32)
    for t in tiles:
        c, r, w, h = t.core
        owned[r:r + h, c:c + w] += 1
        rc, rr, rw, rh = t.read
        assert rc <= c and rr <= r and rc + rw >= c + w and rr + rh >= r + h
        assert rc >= 0 and rr >= 0 and rc + rw <= 2500 and rr + rh <= 1100
    assert (owned == 1).all() and len(tiles) == 6
    assert tiles[1].read == (1024 - 128, 0, 1024 + 256, 1100)  # clipped at the bottom
    # a tile read at full resolution is the map's pixels there
    path = tmp_path / "map.tif"
    write_map(path, UTM, TRANSFORM, (2500, 1100), lake_with_islands((1250, 550), 500, []))
    tile = read_map(path, window=tiles[1].read)
    assert tile.rgb.shape == (1100, 1024 + 256, 3) and tile.scale == (1.0, 1.0)
    assert tile.transform.c == pytest.approx(500_000 + 896 * 0.1)


def test_the_preview_keeps_nodata_and_the_16_bit_stretch(tmp_path, small_preview):
    import rasterio

    path = tmp_path / "s2.tif"
    data = np.random.default_rng(0).integers(1000, 3000, (3, 1200, 1600)).astype(np.uint16)
    data[:, :300, :400] = 0
    with rasterio.open(path, "w", driver="GTiff", width=1600, height=1200, count=3, dtype="uint16", crs=UTM,
                       transform=TRANSFORM, nodata=0, tiled=True, compress="deflate") as ds:
        ds.write(data)
    view, stretch = open_map(path, view_side=256, cache_root=tmp_path / "cache")
    assert preview_path(path, tmp_path / "cache").is_file()
    assert view.rgb.shape == (192, 256, 3) and not view.valid[:40, :60].any() and view.valid[60:].all()
    assert stretch.limits is not None and all(1000 <= lo < hi <= 3000 for lo, hi in stretch.limits)
    tile = read_map(path, window=(200, 200, 400, 400), stretch=stretch)
    assert not tile.valid[:100, :200].any() and tile.valid[100:].all()
