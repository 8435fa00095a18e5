"""The map and polygon formats follow the export's safety rules: targets checked before anything is written, files
that the export did not write are refused (or kept), its own files are listed in the manifest and replaced on the
next export, stale ones are removed only when unchanged, links are refused; plain photos get labelme / yolo only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from geo_maps import UTM, lake_with_islands, write_map
from image_factories import save

from floodlabel.cli import main
from floodlabel.core.common.errors import ExportError
from floodlabel.core.common.hashing import sha256_file
from floodlabel.core.export.project_export import MANIFEST_NAME, export_project
from floodlabel.core.store.project_store import ProjectStore

ALL = ["png", "coco", "geotiff", "gpkg", "geojson", "labelme", "yolo"]
MAP_FILES = {"GeoTIFF/map.tif", "GeoPackage/map.gpkg", "GeoJSON/map.geojson", "labelme/map.json", "labels/map.txt",
             "Mask/map.png"}
PHOTO_FILES = {"labelme/photo.json", "labels/photo.txt", "Mask/photo.png"}


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(tmp_path_factory.mktemp("userdata")))


@pytest.fixture
def data(tmp_path):
    """DATA/Image/map.tif (UTM, 0.5 m pixels) and DATA/Image/photo.jpg, both accepted with a holed mask."""
    data = tmp_path / "DATA"
    (data / "Image").mkdir(parents=True)
    write_map(data / "Image" / "map.tif", UTM, Affine(0.5, 0, 400_000, 0, -0.5, 6_000_000), (80, 60),
              lake_with_islands((40, 30), 25, [(35, 25, 6)]))
    save(data / "Image" / "photo.jpg", np.full((60, 80, 3), 90, np.uint8), "JPEG")
    mask = np.zeros((60, 80), bool)
    mask[5:55, 10:70] = True
    mask[20:30, 30:40] = False
    with ProjectStore(data) as store:
        for rel in ("Image/map.tif", "Image/photo.jpg"):
            store.accept(rel, mask, {"points": []}, model_id="classic")
    return data


def own_files(out):
    return set(json.loads((out / MANIFEST_NAME).read_text())["files"])


def test_every_file_is_in_the_manifest_with_its_hash(data, tmp_path):
    out = tmp_path / "out"
    with ProjectStore(data, read_only=True) as store:
        result = export_project(store, out, formats=ALL)
    files = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert set(files) == MAP_FILES | PHOTO_FILES | {"coco.json"}
    assert all(files[name] == sha256_file(out / name) for name in files)
    assert set(result.files) == {"geotiff", "gpkg", "geojson", "labelme", "yolo"}
    assert any("no CRS" in note for note in result.notes)
    areas = dict(result.areas)
    assert areas["Image/map.tif"].m2 == pytest.approx(areas["Image/map.tif"].pixels * 0.25)
    assert areas["Image/photo.jpg"].m2 is None
    labelme = json.loads((out / "labelme" / "photo.json").read_text())
    assert labelme["imagePath"] == "../../DATA/Image/photo.jpg"
    assert [s["label"] for s in labelme["shapes"]] == ["water", "_background_"]
    with rasterio.open(out / "GeoTIFF" / "map.tif") as ds:
        assert ds.crs == UTM and ds.read(1).sum() == areas["Image/map.tif"].pixels


def test_a_foreign_file_in_a_format_folder_is_refused_before_anything_is_written(data, tmp_path):
    out = tmp_path / "out"
    (out / "GeoPackage").mkdir(parents=True)
    (out / "GeoPackage" / "map.gpkg").write_bytes(b"someone's layer")
    with ProjectStore(data, read_only=True) as store:
        with pytest.raises(ExportError, match="did not write"):
            export_project(store, out, formats=ALL)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["GeoPackage", "GeoPackage/map.gpkg"]
    assert (out / "GeoPackage" / "map.gpkg").read_bytes() == b"someone's layer"


def test_a_format_folder_that_is_a_link_is_refused(data, tmp_path):
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "labels").symlink_to(elsewhere, target_is_directory=True)
    with ProjectStore(data, read_only=True) as store:
        with pytest.raises(ExportError, match="refusing to write"):
            export_project(store, out, formats=["yolo"])
    assert list(elsewhere.iterdir()) == []


def test_a_second_export_replaces_its_own_files_and_removes_stale_ones_it_wrote(data, tmp_path):
    out = tmp_path / "out"
    with ProjectStore(data) as store:
        export_project(store, out, formats=ALL)
        (out / "labels" / "photo.txt").write_text("0 0 0 1 0 1 1\n")  # edited by hand: no longer the export's
        save(data / "Image" / "photo.jpg", np.full((60, 80, 3), 10, np.uint8), "JPEG")  # changed since accept
        result = export_project(store, out, formats=ALL)
    assert dict(result.skipped).keys() == {"Image/photo.jpg"}
    assert out / "labelme" / "photo.json" in result.removed and not (out / "labelme" / "photo.json").exists()
    assert (out / "labels" / "photo.txt").read_text() == "0 0 0 1 0 1 1\n"  # kept: not the export's any more
    assert own_files(out) == MAP_FILES | {"coco.json"}


def test_cli_prints_the_files_and_the_area(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(data), "--out", str(out), "--format", "geotiff,gpkg,labelme,yolo"]) == 0
    printed = capsys.readouterr()
    assert "geotiff: 1 file(s)" in printed.out and "labelme: 2 file(s)" in printed.out
    assert "Image/map.tif:" in printed.out and " ha (" in printed.out and "EPSG:32633" in printed.out
    assert "Image/photo.jpg:" in printed.out and "px (no CRS: area in pixels)" in printed.out
    assert "no CRS" in printed.err
    assert main(["export", str(data), "--out", str(out), "--format", "shapefile"]) == 2
    assert "unknown export format shapefile" in capsys.readouterr().err
