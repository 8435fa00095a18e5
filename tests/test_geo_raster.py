"""GeoTIFFs as images: bands to RGB, nodata, 16-bit stretch, CRS and transform kept, decimated reads from overviews;
plain photos and plain TIFFs read as before."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from geo_maps import UTM, WGS84, lake_with_islands, write_map
from image_factories import save
from PIL import Image
from rasterio.enums import ColorInterp

from floodlabel.core.common.errors import ImageReadError
from floodlabel.core.data import images
from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.data.image_item import load_image_item
from floodlabel.core.data.images import image_size, read_image
from floodlabel.core.geo.georef import geotiff_info, read_geo_info
from floodlabel.core.geo.raster import MapReadError, read_map

TRANSFORM = Affine(0.1, 0, 500_000, 0, -0.1, 5_000_000)


def sixteen_bit_map(path, nodata=0):
    """4 bands (blue, green, red, nir) uint16 with nodata in the top-left corner."""
    rng = np.random.default_rng(0)
    data = rng.integers(1000, 3000, (4, 60, 80)).astype(np.uint16)
    data[:, :10, :10] = nodata
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=4, dtype="uint16", crs=UTM,
                       transform=TRANSFORM, nodata=nodata) as ds:
        ds.write(data)
        ds.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]
    return data


def test_rgb_geotiff_reads_with_its_crs_and_transform(tmp_path):
    path = tmp_path / "map.tif"
    write_map(path, UTM, TRANSFORM, (300, 200), lake_with_islands((150, 100), 60, [(140, 90, 20)]))
    info = geotiff_info(path)
    assert info is not None and info.crs == UTM and info.transform == TRANSFORM and (info.width, info.height) == (300, 200)
    rgb = read_image(path)
    assert rgb.shape == (200, 300, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[100, 150]) == (90, 110, 70) and tuple(rgb[100, 100]) == (40, 60, 120)  # island, water
    assert image_size(path) == (300, 200)
    item = load_image_item(ImagePair("map", path, None))
    assert item.geo == info and item.valid is not None and item.valid.all()


def test_bands_by_colour_interpretation_nodata_and_16_bit_stretch(tmp_path):
    path = tmp_path / "s2.tif"
    data = sixteen_bit_map(path)
    image = read_map(path)
    assert image.bands == (3, 2, 1)  # red, green, blue by colour interpretation
    assert not image.valid[:10, :10].any() and image.valid[10:].all()
    assert (image.rgb[:10, :10] == 0).all()
    valid_red = image.rgb[10:, :, 0]
    assert valid_red.min() == 0 and valid_red.max() == 255  # 2..98 percentile stretched over valid pixels
    assert 100 < np.median(valid_red) < 155
    red = data[2].astype(float)
    assert np.corrcoef(red[10:].ravel(), valid_red.ravel())[0, 1] > 0.95
    nir = read_map(path, bands=(4,))  # one band: grey
    assert nir.bands == (4,) and np.array_equal(nir.rgb[:, :, 0], nir.rgb[:, :, 2])
    with pytest.raises(MapReadError, match="bands"):
        read_map(path, bands=(1, 5, 2))


def test_decimated_read_uses_overviews_and_scales_the_transform(tmp_path):
    path = tmp_path / "big.tif"
    write_map(path, WGS84, Affine(1e-5, 0, 5.0, 0, -1e-5, 52.0), (2048, 1024),
              lake_with_islands((1024, 512), 400, []), overviews=(2, 4, 8))
    assert read_geo_info(path).overviews == (2, 4, 8)
    small = read_map(path, max_side=256)
    assert small.rgb.shape == (128, 256, 3) and small.scale == (8.0, 8.0)
    assert small.transform == Affine(8e-5, 0, 5.0, 0, -8e-5, 52.0)
    tile = read_map(path, window=(1024, 512, 256, 256))
    assert tile.rgb.shape == (256, 256, 3) and tile.transform.c == pytest.approx(5.0 + 1024 * 1e-5)


def test_geotiff_over_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "map.tif"
    write_map(path, UTM, TRANSFORM, (300, 200), lake_with_islands((150, 100), 60, []))
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(ImageReadError, match="image too large: 300x200"):
        read_image(path)


def test_plain_photos_and_tiffs_without_crs_read_as_before(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for name, fmt in (("a.png", "PNG"), ("b.jpg", "JPEG"), ("c.tif", "TIFF")):
        path = save(tmp_path / name, rgb, fmt)
        assert geotiff_info(path) is None
        with Image.open(path) as im:
            assert np.array_equal(read_image(path), np.asarray(im.convert("RGB")))
    item = load_image_item(ImagePair("b", tmp_path / "b.jpg", None))
    assert item.geo is None and item.valid is None and item.image.shape == (30, 40, 3)
    sixteen = tmp_path / "g.tif"
    Image.fromarray(np.array([[0, 256 * 100, 65535]], np.uint16)).save(sixteen)
    assert geotiff_info(sixteen) is None
    np.testing.assert_array_equal(read_image(sixteen)[0, :, 0], [0, 100, 255])  # v >> 8, not stretched
