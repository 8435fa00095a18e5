"""core.tiles.tiled: the tiled full-resolution decode. A water body across a tile seam gives one connected region with
no line at the seam (classic backend), each pixel comes from its own tile's core (one owner), tile embeddings are
cached per tile key, and a map on disk is read tile by tile (geo_maps GeoTIFF)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from affine import Affine

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.tiles.tiled import TiledDecoder, array_reader, deepest_points, map_reader, tile_key
from floodlabel.core.tiles.view_frame import ViewFrameSession, scale_prompt, upscale_mask
from geo_maps import LAND, UTM, WATER, full_mask, rectangle_with_islands, write_map

SEAM = 1024


def scene(height=1024, width=2048, box=(600, 300, 1500, 700), seed=0):
    """Land with a water rectangle across the seam at x = 1024 (mild noise so GrabCut has texture)."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = LAND
    c0, r0, c1, r1 = box
    image[r0:r1, c0:c1] = WATER
    noise = rng.integers(-6, 7, image.shape)
    truth = np.zeros((height, width), bool)
    truth[r0:r1, c0:c1] = True
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8), truth


class CountingSession:
    """A SegmentationSession whose embeddings are counted (to check the per-tile cache)."""

    def __init__(self, session):
        self.inner, self.calls = session, []

    def embedding(self, image, key=None):
        self.calls.append((image.shape, key))
        return self.inner.embedding(image, key)

    def predict(self, *args, **kwargs):
        return self.inner.predict(*args, **kwargs)


@pytest.fixture(scope="module")
def classic():
    return SegmentationSession.open("classic")


def test_a_water_body_across_a_seam_is_one_region_with_no_line(classic):
    image, truth = scene()
    session = CountingSession(classic)
    decoder = TiledDecoder(session, array_reader(image), image.shape[:2], "scene")
    assert [t.core for t in decoder.tiles] == [(0, 0, 1024, 1024), (1024, 0, 1024, 1024)]
    result = decoder.decode(Prompt.point(800, 500))  # a click in the left tile only
    assert [t.core[0] for t in result.tiles] == [0, 1024]  # the right tile was grown into through the halo
    mask = result.mask
    assert mask.shape == truth.shape and result.owned.all()
    count, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    assert count - 1 == 1  # one region
    iou = np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum()
    assert iou > 0.95, iou
    rows = slice(320, 680)  # inside the water, away from its top and bottom edges
    assert mask[rows, SEAM - 8:SEAM + 8].all()  # no line at the seam
    assert mask[rows, SEAM - 1].sum() == mask[rows, SEAM].sum()
    # tile embeddings are of the read windows (core + 128 px halo) and cached by tile key
    assert [shape for shape, _ in session.calls] == [(1024, 1152, 3), (1024, 1152, 3)]
    assert [key for _, key in session.calls] == [tile_key("scene", t) for t in decoder.tiles]
    again = decoder.decode(Prompt.point(1300, 500))  # a click in the right tile: no new embedding
    assert len(session.calls) == 2 and decoder.embeds == 2
    assert np.array_equal(again.owned, result.owned)


def test_each_pixel_comes_from_its_own_tiles_core(classic):
    """The one-owner rule: the stitched mask inside a tile's core is that tile's own decode, cropped."""
    image, _ = scene(height=1200, width=2100, box=(700, 800, 1400, 1150))
    decoder = TiledDecoder(classic, array_reader(image), image.shape[:2], "own")
    prompt = Prompt.point(900, 950)
    result = decoder.decode(prompt)
    assert len(result.tiles) >= 2
    for window, local in zip(result.tiles, result.prompts):
        c0, r0, w, h = window.core
        rc, rr, rw, rh = window.read
        own = decoder._decode_tile(decoder.tiles.index(window), local)[0]  # (rh, rw), the tile's read frame
        assert own.shape == (rh, rw)
        assert np.array_equal(result.mask[r0:r0 + h, c0:c0 + w], own[r0 - rr:r0 - rr + h, c0 - rc:c0 - rc + w])
    # outside the decoded tiles nothing is water
    assert not result.mask[~result.owned].any()


def test_a_box_decodes_every_tile_it_meets_and_negative_points_stay_local(classic):
    image, truth = scene()
    decoder = TiledDecoder(classic, array_reader(image), image.shape[:2], "box")
    result = decoder.decode(Prompt.from_box((580, 280, 1520, 720)))
    assert [t.core[0] for t in result.tiles] == [0, 1024]
    iou = np.logical_and(result.mask, truth).sum() / np.logical_or(result.mask, truth).sum()
    assert iou > 0.9, iou
    with pytest.raises(ValueError):
        decoder.decode(Prompt())
    only_negative = Prompt.point(100, 100, positive=False)
    assert decoder.touched(only_negative) == [] and not decoder.decode(only_negative).mask.any()


def test_a_geotiff_is_read_tile_by_tile(classic, tmp_path):
    """A 3000 x 2000 map (0.1 m pixels): a lake across the seams is decoded from full-resolution tile reads."""
    path = tmp_path / "map.tif"
    water = rectangle_with_islands((700, 600, 2300, 1500), [(1500, 1000, 60)])
    write_map(path, UTM, Affine(0.1, 0, 500000, 0, -0.1, 4000000), (3000, 2000), water)
    from floodlabel.core.geo.raster import compute_stretch

    decoder = TiledDecoder(classic, map_reader(path, compute_stretch(path, (1, 2, 3))), (2000, 3000), "map")
    result = decoder.decode(Prompt.point(800, 700))
    truth = full_mask(water, (3000, 2000))
    iou = np.logical_and(result.mask, truth).sum() / np.logical_or(result.mask, truth).sum()
    assert iou > 0.9, iou
    assert len(result.tiles) == 6  # 3 x 2 tiles, all reached from one click
    count, _ = cv2.connectedComponents(result.mask.astype(np.uint8), connectivity=4)
    assert count - 1 == 1


def test_deepest_points_pick_one_point_per_part_inside_it():
    mask = np.zeros((40, 100), bool)
    mask[5:35, 5:30] = True
    mask[10:20, 60:90] = True
    pts = deepest_points(mask, 3)
    assert len(pts) == 2
    for x, y in pts:
        assert mask[int(y), int(x)]


def test_view_frame_session_scales_prompts_and_upscales_masks(classic):
    full = np.zeros((800, 1200, 3), np.uint8)
    full[:] = LAND
    full[200:600, 300:900] = WATER
    view = cv2.resize(full, (600, 400), interpolation=cv2.INTER_AREA)
    emb = classic.embedding(view)
    frame = ViewFrameSession(classic, (800, 1200))
    pred = frame.predict(emb, Prompt.point(600, 400))
    mask = pred.mask(pred.best)
    assert mask.shape == (800, 1200)
    truth = np.zeros((800, 1200), bool)
    truth[200:600, 300:900] = True
    assert np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum() > 0.95
    assert frame.predict(emb, Prompt.point(600, 400), output_size=(400, 600)).mask(0).shape == (400, 600)
    scaled = scale_prompt(Prompt(np.array([[100, 50]]), np.array([1]), (0, 0, 1200, 800)), (0.5, 0.25))
    assert scaled.points.tolist() == [[25.0, 25.0]] and scaled.box.tolist() == [0, 0, 300, 400]
    assert frame.model_id == classic.model_id  # everything else is the wrapped session's
    up = upscale_mask(np.eye(4, dtype=bool), (8, 8))
    assert up.shape == (8, 8) and up[0, 0] and not up[0, 7]


def test_tiles_go_through_a_sam_session_and_its_embedding_cache(tmp_path):
    """The tiny random SAM: every tile is embedded once, kept in the session's cache under its tile key (a new
    decoder on the same image, as after reopening it, embeds nothing), masks stitched at full size."""
    from tiny_sam import tiny_sam_checkpoint

    session = SegmentationSession.open(str(tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=0)),
                                       cache_dir=tmp_path / "cache")
    image, _ = scene(height=1100, width=1500)
    decoder = TiledDecoder(session, array_reader(image), image.shape[:2], "sam")
    prompt = Prompt.from_box((100, 100, 1400, 1060))  # meets all four tiles (the bottom row starts at 1024)
    result = decoder.decode(prompt)
    assert len(result.tiles) == 4 and result.mask.shape == (1100, 1500) and result.owned.all()
    for window in decoder.tiles:
        assert session.cache.contains(session.cache_model_id, tile_key("sam", window))
    encoded = []
    embed = session.segmenter.embed
    session.segmenter.embed = lambda image, **kw: encoded.append(image.shape) or embed(image, **kw)
    fresh = TiledDecoder(session, array_reader(image), image.shape[:2], "sam")
    assert np.array_equal(fresh.decode(prompt).mask, result.mask)
    assert fresh.embeds == 4 and encoded == []  # its own LRU missed, the session's cache hit: no encoder run
