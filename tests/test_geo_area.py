"""core.geo.area: m² / ha from the pixel size (projected), through the equal-area projection (geographic), pixels
without a CRS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from geo_maps import UTM, WGS84, ellipsoid_band_area
from rasterio.crs import CRS

from floodlabel.core.geo.area import mask_area, row_areas_m2
from floodlabel.core.geo.georef import GeoInfo


def test_projected_area_is_pixels_times_pixel_size():
    mask = np.zeros((200, 300), bool)
    mask[10:110, 20:220] = True
    area = mask_area(mask, GeoInfo(UTM, Affine(0.1, 0, 500_000, 0, -0.1, 5_000_000), 300, 200))
    assert area.pixels == 20_000 and area.m2 == pytest.approx(200.0) and area.ha == pytest.approx(0.02)
    assert area.crs == "EPSG:32633" and area.method == "pixel size" and "ha" in area.describe()


def test_projected_feet_are_converted_to_metres():
    mask = np.ones((10, 10), bool)
    feet = CRS.from_epsg(2263)  # NAD83 / New York Long Island (US survey feet)
    area = mask_area(mask, GeoInfo(feet, Affine(1, 0, 1_000_000, 0, -1, 200_000), 10, 10))
    assert area.m2 == pytest.approx(100 * (1200 / 3937) ** 2, rel=1e-6)


def test_geographic_area_matches_the_ellipsoid_formula():
    # a 0.01° x 0.01° block at 52° N, 1e-5° pixels (about 0.69 x 1.11 m)
    px = 1e-5
    transform = Affine(px, 0, 5.0, 0, -px, 52.01)
    mask = np.zeros((1000, 1200), bool)
    mask[:, 100:1100] = True
    area = mask_area(mask, GeoInfo(WGS84, transform, 1200, 1000))
    expected = ellipsoid_band_area(52.0, 52.01, 1000 * px)
    assert area.m2 == pytest.approx(expected, rel=1e-9)
    assert area.method.startswith("equal-area")
    # per-row areas shrink towards the pole
    rows = row_areas_m2(GeoInfo(WGS84, transform, 1200, 1000))
    assert rows.shape == (1000,) and np.all(np.diff(rows) > 0)  # row 0 is the northernmost


def test_rotated_geographic_raster_goes_through_polygons():
    px = 1e-5
    mask = np.zeros((300, 300), bool)
    mask[50:250, 40:260] = True
    mask[100:120, 100:130] = False
    north_up = mask_area(mask, GeoInfo(WGS84, Affine(px, 0, 5.0, 0, -px, 52.0), 300, 300))
    angle = math.radians(0.5)  # a hardly rotated grid: the same ground area within 0.1%
    rotated = Affine(px * math.cos(angle), -px * math.sin(angle), 5.0, -px * math.sin(angle), -px * math.cos(angle),
                     52.0)
    area = mask_area(mask, GeoInfo(WGS84, rotated, 300, 300))
    assert "polygons" in area.method and area.m2 == pytest.approx(north_up.m2, rel=1e-3)


def test_no_crs_gives_pixels_and_says_so():
    mask = np.zeros((20, 30), bool)
    mask[:5] = True
    for info in (None, GeoInfo(None, Affine.identity(), 30, 20)):
        area = mask_area(mask, info)
        assert area.pixels == 150 and area.m2 is None and area.ha is None
        assert area.describe() == "150 px (no CRS: area in pixels)"


def test_mask_of_another_size_is_refused():
    with pytest.raises(ValueError, match="mask is 3x2"):
        mask_area(np.ones((2, 3), bool), GeoInfo(UTM, Affine(1, 0, 0, 0, -1, 0), 4, 4))
