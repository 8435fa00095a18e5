"""Issue 17's map checks through the CLI: a 12,000 x 12,000 UTM GeoTIFF with 0.1 m pixels (a 400 m lake across the
1024 px tile seams, 49 square islands, some across seams) and an EPSG:4326 map. The water area is within 0.5% of
the analytic one; the GeoPackage / GeoJSON read back in the map's CRS with one feature and every island as a hole,
and rasterise back to the mask's pixels; the GeoTIFF mask has the map's CRS and transform."""

from __future__ import annotations

import io
import math

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
from affine import Affine
from geo_maps import UTM, WGS84, ellipsoid_band_area, full_mask, lake_with_islands, rectangle_with_islands, write_map

from floodlabel.cli import main
from floodlabel.core.geo.polygons import polygons_to_mask
from floodlabel.core.store.project_store import ProjectStore

pytestmark = pytest.mark.slow

UTM_SIZE = (12_000, 12_000)
UTM_TRANSFORM = Affine(0.1, 0, 500_000, 0, -0.1, 5_000_000)
ISLANDS = [(6000 + 600 * i, 6000 + 600 * j, 200) for i in range(-3, 4) for j in range(-3, 4)]  # 20 m squares
UTM_ANALYTIC_M2 = math.pi * 400.0 ** 2 - len(ISLANDS) * 20.0 * 20.0

GEO_SIZE = (6000, 4000)
GEO_PX = 2e-6  # degrees: about 0.14 m east-west, 0.22 m north-south at 52° N
GEO_TRANSFORM = Affine(GEO_PX, 0, 5.0, 0, -GEO_PX, 52.01)
GEO_BOX = (500, 300, 5500, 3700)
GEO_ISLANDS = [(1000 + 900 * i, 1000 + 900 * j, 150) for i in range(5) for j in range(3)]


def exported_map(tmp_path_factory, name, crs, transform, size, water, capsys=None):
    root = tmp_path_factory.mktemp(name)
    data = root / "DATA"
    (data / "Image").mkdir(parents=True)
    write_map(data / "Image" / f"{name}.tif", crs, transform, size, water)
    mask = full_mask(water, size)
    with ProjectStore(data) as store:
        store.accept(f"Image/{name}.tif", mask, {"points": [[6000, 6000, 1]]}, model_id="classic")
    return root, data, mask


@pytest.fixture(scope="module")
def utm_map(tmp_path_factory):
    return exported_map(tmp_path_factory, "utm", UTM, UTM_TRANSFORM, UTM_SIZE,
                        lake_with_islands((6000.0, 6000.0), 4000.0, ISLANDS))


@pytest.fixture(scope="module")
def geographic_map(tmp_path_factory):
    return exported_map(tmp_path_factory, "wgs84", WGS84, GEO_TRANSFORM, GEO_SIZE,
                        rectangle_with_islands(GEO_BOX, GEO_ISLANDS))


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(tmp_path_factory.mktemp("userdata")))


def export(root, data, capsys, formats="png,geotiff,gpkg,geojson"):
    out = root / "out"
    assert main(["export", str(data), "--out", str(out), "--format", formats, "--overwrite"]) == 0
    return out, capsys.readouterr().out


def read_polygons(path):
    meta, _, geometry, fields = pyogrio.raw.read(path)
    return meta, [shapely.from_wkb(g) for g in geometry], dict(zip(meta["fields"], fields))


def check_vector(path, mask, transform, crs, holes):
    meta, polygons, fields = read_polygons(path)
    assert rasterio.crs.CRS.from_user_input(meta["crs"]) == crs
    assert len(polygons) == 1 and all(p.geom_type == "Polygon" and p.is_valid for p in polygons)
    assert len(polygons[0].interiors) == holes and list(fields["holes"]) == [holes]
    back = polygons_to_mask(polygons, mask.shape, transform)
    agreement = np.count_nonzero(back == mask) / mask.size
    assert agreement >= 0.999
    return agreement, fields


def test_utm_map_area_gpkg_geojson_and_geotiff(utm_map, capsys):
    root, data, mask = utm_map
    out, printed = export(root, data, capsys)
    # the area: 0.1 m pixels -> 0.01 m² each, within 0.5% of pi r² minus the islands
    m2 = np.count_nonzero(mask) * 0.01
    assert abs(m2 - UTM_ANALYTIC_M2) / UTM_ANALYTIC_M2 < 0.005
    assert f"{m2 / 10_000:.4f} ha" in printed and "EPSG:32633" in printed
    for path in (out / "GeoPackage" / "utm.gpkg", out / "GeoJSON" / "utm.geojson"):
        agreement, fields = check_vector(path, mask, UTM_TRANSFORM, UTM, len(ISLANDS))
        assert agreement == 1.0  # unsimplified: exact
        assert fields["area_m2"][0] == pytest.approx(m2, rel=1e-9)
    with rasterio.open(out / "GeoTIFF" / "utm.tif") as ds:
        assert ds.crs == UTM and ds.transform == UTM_TRANSFORM and ds.dtypes == ("uint8",)
        assert ds.compression.name.lower() == "deflate" and ds.block_shapes[0] == (512, 512)
        assert np.array_equal(ds.read(1), mask.astype(np.uint8))
    assert (out / "GeoTIFF" / "utm.tif").stat().st_size < 2_000_000  # 144 MP, mostly one value


def test_geographic_map_area_through_an_equal_area_projection(geographic_map, capsys):
    root, data, mask = geographic_map
    out, printed = export(root, data, capsys, formats="gpkg,geojson,geotiff")
    c0, r0, c1, r1 = GEO_BOX
    lat = lambda row: 52.01 - row * GEO_PX  # noqa: E731
    analytic = ellipsoid_band_area(lat(r1), lat(r0), (c1 - c0) * GEO_PX)
    analytic -= sum(ellipsoid_band_area(lat(r + s), lat(r), s * GEO_PX) for _, r, s in GEO_ISLANDS)
    line = next(line for line in printed.splitlines() if "wgs84.tif" in line)
    ha = float(line.split(": ")[1].split(" ha")[0])
    assert abs(ha * 10_000 - analytic) / analytic < 0.005 and "EPSG:4326" in line
    for path in (out / "GeoPackage" / "wgs84.gpkg", out / "GeoJSON" / "wgs84.geojson"):
        agreement, fields = check_vector(path, mask, GEO_TRANSFORM, WGS84, len(GEO_ISLANDS))
        assert agreement == 1.0
        assert fields["area_m2"][0] == pytest.approx(analytic, rel=1e-4)
    with rasterio.open(out / "GeoTIFF" / "wgs84.tif") as ds:
        assert ds.crs == WGS84 and ds.transform == GEO_TRANSFORM
        assert np.array_equal(ds.read(1).astype(bool), mask)


def test_stats_gives_the_area_of_a_geotiff_with_its_mask(utm_map, capsys, monkeypatch):
    """stats decodes the mask: a 144 MP one needs the pixel limit raised (FLOODLABEL_MAX_MEGAPIXELS=150)."""
    from floodlabel.core.data import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 150_000_000)
    root, data, mask = utm_map
    export(root, data, capsys, formats="png")
    dataset = root / "dataset"
    (dataset / "Mask").mkdir(parents=True)
    (dataset / "Image").symlink_to(data / "Image")
    (root / "out" / "Mask" / "utm.png").rename(dataset / "Mask" / "utm.png")
    assert main(["stats", str(dataset)]) == 0
    printed = capsys.readouterr().out
    assert f"{np.count_nonzero(mask) * 0.01 / 10_000:.4f} ha" in printed and "pixel size" in printed


def test_simplified_export_is_smaller_and_close(utm_map, capsys):
    root, data, mask = utm_map
    out = root / "simplified"
    assert main(["export", str(data), "--out", str(out), "--format", "gpkg", "--simplify", "0.5"]) == 0
    capsys.readouterr()
    _, polygons, _ = read_polygons(out / "GeoPackage" / "utm.gpkg")
    exact = root / "out" / "GeoPackage" / "utm.gpkg"
    assert (out / "GeoPackage" / "utm.gpkg").stat().st_size < exact.stat().st_size
    back = polygons_to_mask(polygons, mask.shape, UTM_TRANSFORM)
    assert np.count_nonzero(back == mask) / mask.size > 0.999 and len(polygons[0].interiors) == len(ISLANDS)
