"""core.geo.polygons / photo_formats: one polygon per region with its holes, exact round trips, simplification
off by default, labelme and YOLO-seg polygons for plain photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
from affine import Affine
from shapely.geometry import Polygon

from floodlabel.core.geo.photo_formats import HOLE_LABEL, WATER_LABEL, labelme_json, yolo_seg_text
from floodlabel.core.geo.polygons import hole_count, mask_to_polygons, polygons_to_mask


def flooded_field(shape=(240, 320), seed=0) -> np.ndarray:
    """A lake with 3 islands (one touching another's corner), a pond, and random specks."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    mask[20:200, 30:250] = True
    mask[40:60, 50:80] = False  # houses
    mask[100:130, 150:170] = False
    mask[60:70, 80:90] = False  # touches the first house at a corner: still its own hole after make_valid
    mask[210:230, 270:300] = True  # a pond
    mask ^= rng.random(shape) < 0.01
    return mask


def test_one_polygon_per_region_with_its_holes():
    mask = np.zeros((60, 80), bool)
    mask[5:50, 5:60] = True
    mask[10:20, 10:20] = False
    mask[30:35, 40:45] = False
    mask[52:56, 65:75] = True
    mask[57, 76] = True  # touches the pond only at a corner: a separate region
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 3 and hole_count(polygons) == 2
    assert [len(p.interiors) for p in polygons] == [2, 0, 0]
    assert polygons[0].area == mask[5:50, 5:60].sum()  # pixel units with no transform; largest first
    assert all(p.is_valid for p in polygons)


def test_round_trip_is_exact_in_map_coordinates():
    mask = flooded_field()
    transform = Affine(0.25, 0, 600_000, 0, -0.25, 5_800_000)
    polygons = mask_to_polygons(mask, transform)
    assert all(p.is_valid for p in polygons)
    back = polygons_to_mask(polygons, mask.shape, transform)
    assert np.array_equal(back, mask)


def test_simplification_is_off_by_default_and_approximate_when_on():
    mask = flooded_field()
    exact = mask_to_polygons(mask)
    simple = mask_to_polygons(mask, simplify=1.5)
    assert sum(len(p.exterior.coords) for p in simple) < sum(len(p.exterior.coords) for p in exact)
    agreement = (polygons_to_mask(simple, mask.shape) == mask).mean()
    assert 0.98 < agreement < 1.0


def test_labelme_keeps_holes_as_background_shapes():
    mask = flooded_field()
    doc = json.loads(labelme_json(mask_to_polygons(mask), "../Image/field.jpg", (320, 240)))
    assert doc["imagePath"] == "../Image/field.jpg" and doc["imageData"] is None
    assert (doc["imageWidth"], doc["imageHeight"]) == (320, 240)
    labels = [s["label"] for s in doc["shapes"]]
    assert labels[0] == WATER_LABEL and labels.count(HOLE_LABEL) == hole_count(mask_to_polygons(mask)) >= 3
    # drawn in order as labelme2voc does ("_background_" = not water), the shapes give the mask back, specks of
    # water inside the houses included
    drawn = np.zeros(mask.shape, bool)
    for shape in doc["shapes"]:
        inside = polygons_to_mask([Polygon(shape["points"])], mask.shape)
        drawn[inside] = shape["label"] == WATER_LABEL
    assert np.array_equal(drawn, mask)


def test_yolo_rings_keep_the_holes_when_filled():
    mask = np.zeros((240, 320), bool)
    mask[20:200, 30:250] = True
    mask[40:60, 50:80] = False
    mask[100:130, 150:170] = False
    mask[210:230, 270:300] = True
    text = yolo_seg_text(mask_to_polygons(mask), (320, 240))
    lines = text.splitlines()
    assert len(lines) == 2 and all(line.startswith("0 ") for line in lines)
    filled = np.zeros(mask.shape, np.uint8)
    for line in lines:
        values = np.array(line.split()[1:], float)
        assert values.min() >= 0 and values.max() <= 1 and len(values) % 2 == 0
        ring = np.round(values.reshape(-1, 2) * [320, 240]).astype(np.int32)
        cv2.fillPoly(filled, [ring], 1)  # what ultralytics does with a label ring
    # pixel-corner vertices: fillPoly also fills the right and bottom edge pixels, nothing else differs
    assert not filled[45:55, 55:75].any() and not filled[105:125, 155:165].any()  # the holes stay holes
    assert (filled.astype(bool) == mask).mean() > 0.99


def test_empty_mask_gives_no_polygons():
    mask = np.zeros((10, 10), bool)
    assert mask_to_polygons(mask) == [] and yolo_seg_text([], (10, 10)) == ""
    assert not polygons_to_mask([], (10, 10)).any()


def test_pixel_polygons_mapped_are_the_map_polygons():
    from floodlabel.core.geo.polygons import to_map

    mask = flooded_field()
    transform = Affine(0.25, 0.01, 600_000, 0.02, -0.25, 5_800_000)  # sheared too
    direct = mask_to_polygons(mask, transform)
    mapped = to_map(mask_to_polygons(mask), transform)
    import shapely

    assert len(direct) == len(mapped) and hole_count(direct) == hole_count(mapped)
    difference = shapely.union_all(direct).symmetric_difference(shapely.union_all(mapped))
    assert difference.area < 1e-9 * shapely.union_all(direct).area
    assert sorted(round(p.area, 6) for p in direct) == sorted(round(p.area, 6) for p in mapped)


def test_vector_files_have_counter_clockwise_exteriors_and_clockwise_holes():
    import io

    import pyogrio.raw
    import shapely
    from geo_maps import UTM

    from floodlabel.core.geo.georef import GeoInfo
    from floodlabel.core.geo.gis_formats import geojson_bytes

    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    mask[10:20, 10:20] = False
    transform = Affine(1, 0, 400_000, 0, -1, 5_000_000)  # north-up: flips the rings' turning
    data = geojson_bytes(mask_to_polygons(mask, transform), GeoInfo(UTM, transform, 40, 40))
    polygon = shapely.from_wkb(pyogrio.raw.read(io.BytesIO(data))[2][0])
    assert polygon.exterior.is_ccw and not polygon.interiors[0].is_ccw
