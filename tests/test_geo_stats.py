"""`floodlabel stats` on a map over the 100 MP pixel limit: the GeoTIFF is checked by a decimated read and its
12,000 x 9,000 mask (a mostly-zero PNG, small on disk) is measured although it is over the limit, because a map's
mask may be as large as the map (core.data.images.mask_pixel_limit). Photos and unpaired masks over the limit stay
refused."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from affine import Affine

from floodlabel.cli import main
from floodlabel.core.data.dataset_stats import compute_stats
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.data.images import MAX_IMAGE_PIXELS
from geo_maps import UTM, full_mask, rectangle_with_islands, write_map

SIZE = (12000, 9000)  # 108 MP
WATER = rectangle_with_islands((2000, 1000, 9000, 7000), [(4000, 3000, 500)])
WATER_PIXELS = 7000 * 6000 - 500 * 500


@pytest.fixture(scope="module")
def big_map(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats") / "survey"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    write_map(root / "Image" / "ortho.tif", UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), SIZE, WATER)
    mask = full_mask(WATER, SIZE).view(np.uint8) * np.uint8(255)
    cv2.imwrite(str(root / "Mask" / "ortho.png"), mask, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert SIZE[0] * SIZE[1] > MAX_IMAGE_PIXELS
    return root


def test_stats_measures_a_map_mask_over_the_pixel_limit(big_map):
    stats = compute_stats(open_dataset(big_map))
    assert stats.unreadable == [] and stats.problem_count == 0
    assert (stats.width_range, stats.height_range) == ((12000, 12000), (9000, 9000))
    assert stats.masks_measured == 1
    assert stats.water_ratio_mean == pytest.approx(WATER_PIXELS / (SIZE[0] * SIZE[1]))


def test_the_stats_command_gives_the_area_of_a_108_mp_map(big_map, capsys):
    assert main(["stats", str(big_map), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unreadable"] == []
    (row,) = out["water_area"]["images"]
    assert row["pixels"] == WATER_PIXELS and row["m2"] == pytest.approx(WATER_PIXELS * 0.01)


def test_a_photo_and_a_mask_over_the_limit_are_still_refused(big_map, tmp_path):
    root = tmp_path / "photos"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    blank = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    cv2.imwrite(str(root / "Image" / "huge.png"), blank, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(root / "Mask" / "huge.png"), blank, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    stats = compute_stats(open_dataset(root))
    reasons = dict(stats.unreadable)
    assert len(reasons) == 2 and all(r.startswith("image too large: 12000x9000") for r in reasons.values())
