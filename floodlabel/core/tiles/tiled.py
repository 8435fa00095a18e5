"""Tiled decode of a large image at full resolution: per-tile embeddings, prompts decoded on the tiles they touch,
masks stitched with one owner per pixel.

Frames: the *full* frame is the image's (H, W) pixels (a map's full resolution; prompts and the stitched mask live
there). A tile's *read* frame is its read window (core + halo, `core.geo.pyramid.tile_windows`: 1024 px cores on a
grid from the top-left, 128 px halo, clipped to the image); its embedding is of that window's pixels, so a tile is
decoded at full resolution (the window's own size, at most 1280 px: SAM sees it through its 1024 input at
0.8-1.0 map pixels per input pixel instead of W / 1024).

Rules:
- Embeddings: one per tile, computed when a decode first needs it (`embed` through the session or segmenter) and
  kept in an LRU of `max_cached` tiles keyed by `tile_key(image_key, core origin)`; a SegmentationSession also
  keeps it in its embedding cache (memory + disk for SAM) under that key.
- Which tiles a prompt touches: the tiles whose core holds a positive point, or whose core meets the box. Each is
  decoded with the prompt's points that lie in its read window and the box clipped to that window (tile frame).
- Growing across seams: a tile's result (best-scoring candidate, read-window size) that reaches into a neighbour's
  core through the halo, with at least `min_seed` pixels there, decodes that neighbour too, seeded with positive
  points on the deepest pixels of that overlap (the user's points in the neighbour's window are added; a box
  prompt's neighbours outside the box are not grown into). At most `max_tiles` tiles are decoded per prompt.
- Seam rule (one owner): every full-frame pixel belongs to exactly one tile's core; the stitched mask takes each
  decoded tile's result inside its core only, tiles not decoded are False. No overlap is blended or voted: across a
  seam the two sides come from their own tiles' decodes, each of which saw the other side through its halo, so a
  water body across the seam stays one region with no gap line (tests/test_geo_tiled.py).
- Order: the tiles meeting the `visible` range (what the window shows, full frame) are decoded first, the touched
  ones before the grown ones, then the rest in the order they were found; `prefetch_order(visible)` lists the tiles
  worth encoding before any click: those in view, nearest the view's centre first, then a ring of one tile around
  it, at most PREFETCH_MAX; none when more than PREFETCH_VIEW_MAX tiles are in view (zoomed out, the view-level
  decode is what is seen).
- How the coarse level meets it: the view-level decode (`view_frame.ViewFrameSession`, whole image through one
  embedding) is what a zoomed-out window shows; a tiled decode replaces it inside the decoded tiles' cores (the
  caller pastes `TiledResult.mask` over the coarse one there, `TiledResult.owned` says where).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from floodlabel.core.annotation.prompts import POSITIVE, Prompt
from floodlabel.core.geo.pyramid import HALO, TILE, TileWindow, tile_windows
from floodlabel.core.segment.segmenter import Embedding

TILED_ABOVE = 2048
"""Images whose long side is larger are worth a tiled decode (at most this size the view frame is the full one)."""
MAX_TILES = 64
MIN_SEED = 16
SEEDS_PER_SIDE = 3
PREFETCH_MAX = 12
"""At most this many tiles (view and ring) are prefetched for one view."""
PREFETCH_VIEW_MAX = 6
"""A view meeting more tiles than this is too far out to prefetch for."""

ReadTile = Callable[[tuple[int, int, int, int]], np.ndarray]
"""(col_off, row_off, width, height) full-frame window -> (height, width, 3) uint8 RGB."""


@dataclass
class TiledResult:
    """mask: (H, W) bool, the stitched full-frame mask; owned: (H, W) bool, the cores of the decoded tiles (where
    `mask` is the tiled decode's); tiles: the decoded tiles in decode order; prompts: the prompt each was decoded
    with (its read frame: the user's points inside its window, seeds, the clipped box); scores: each one's chosen
    candidate's score."""

    mask: np.ndarray
    owned: np.ndarray
    tiles: list[TileWindow] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


class TiledDecoder:
    """Decodes prompts of one (H, W) image tile by tile (rules in the module docstring).

    session: a SegmentationSession (`embedding(image, key)` caches) or a bare Segmenter (`embed(image)`), with
    `predict(embedding, prompt, multimask, output_size)`. read_tile: reads a full-frame window (`array_reader`,
    `map_reader`). image_key: the image's cache key (`ImageItem.key`).
    """

    def __init__(self, session, read_tile: ReadTile, full_size: tuple[int, int], image_key: str, *,
                 tile: int = TILE, halo: int = HALO, max_cached: int = 16, max_tiles: int = MAX_TILES,
                 min_seed: int = MIN_SEED) -> None:
        self.session = session
        self.read_tile = read_tile
        self.full_size = (int(full_size[0]), int(full_size[1]))
        self.image_key = image_key
        self.tiles = tile_windows(self.full_size[1], self.full_size[0], tile, halo)
        self.tile = tile
        self.max_cached, self.max_tiles, self.min_seed = max_cached, max_tiles, min_seed
        self.embeds = 0  # embeddings computed here (cache misses of the LRU), for tests and benchmarks
        self._cache: OrderedDict[str, Embedding] = OrderedDict()

    # ------------------------------------------------------------------------------------------------ public

    def decode(self, prompt: Prompt, checkpoint: Callable[[], None] | None = None,
               progress: Callable[[int], None] | None = None,
               visible: tuple[float, float, float, float] | None = None) -> TiledResult:
        """The stitched full-frame mask of `prompt` (full-frame pixels). checkpoint: called before each tile (it
        may raise to cancel, e.g. core.common.cancel.Cancelled); progress(tiles decoded so far): after each.
        visible: (x0, y0, x1, y1) full frame, the tiles meeting it go first (rules in the module docstring)."""
        if not prompt.has_geometry:
            raise ValueError("empty prompt: give at least one point or a box")
        H, W = self.full_size
        result = TiledResult(np.zeros((H, W), bool), np.zeros((H, W), bool))
        queue: list[tuple[int, np.ndarray]] = [(i, np.zeros((0, 2), np.float32)) for i in self.touched(prompt)]
        done: set[int] = set()
        while queue and len(done) < self.max_tiles:
            index, seeds = queue.pop(self._next(queue, visible))
            if index in done:
                continue
            done.add(index)
            if checkpoint is not None:
                checkpoint()
            window = self.tiles[index]
            local = self._local_prompt(prompt, window, seeds)
            if local is None:
                continue
            mask, score = self._decode_tile(index, local)
            self._paste(result, window, mask)
            result.tiles.append(window)
            result.prompts.append(local)
            if progress is not None:
                progress(len(result.tiles))
            result.scores.append(score)
            for neighbour, points in self._spill(window, mask, prompt):
                if neighbour not in done:
                    queue.append((neighbour, points))
        return result

    def touched(self, prompt: Prompt) -> list[int]:
        """Indices of the tiles a prompt touches: cores holding a positive point or meeting the box."""
        out = []
        positives = prompt.points[prompt.labels == POSITIVE]
        for i, t in enumerate(self.tiles):
            c0, r0, w, h = t.core
            hit = bool(len(positives)) and bool(np.any((positives[:, 0] >= c0) & (positives[:, 0] < c0 + w)
                                                       & (positives[:, 1] >= r0) & (positives[:, 1] < r0 + h)))
            if not hit and prompt.box is not None:
                x0, y0, x1, y1 = prompt.box
                hit = x0 < c0 + w and x1 > c0 and y0 < r0 + h and y1 > r0
            if hit:
                out.append(i)
        return out

    def in_view(self, visible: tuple[float, float, float, float]) -> list[int]:
        """Indices of the tiles whose core meets `visible` (x0, y0, x1, y1), full frame."""
        return [i for i, t in enumerate(self.tiles) if _meets(t.core, visible)]

    def prefetch_order(self, visible: tuple[float, float, float, float], ring: int = 1) -> list[int]:
        """The tiles to encode ahead of a click for this view: those in view nearest its centre first, then the
        ones within `ring` tiles around it, at most PREFETCH_MAX; [] when more than PREFETCH_VIEW_MAX are in view."""
        x0, y0, x1, y1 = visible
        seen = set(self.in_view(visible))
        if not seen or len(seen) > PREFETCH_VIEW_MAX:
            return []
        pad = ring * self.tile
        around = self.in_view((x0 - pad, y0 - pad, x1 + pad, y1 + pad))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

        def distance(i: int) -> float:
            c0, r0, w, h = self.tiles[i].core
            return (c0 + w / 2 - cx) ** 2 + (r0 + h / 2 - cy) ** 2

        return sorted(around, key=lambda i: (i not in seen, distance(i)))[:PREFETCH_MAX]

    def is_cached(self, index: int) -> bool:
        """Whether tile `index`'s embedding is in this decoder's LRU (the session's caches are not asked)."""
        return tile_key(self.image_key, self.tiles[index]) in self._cache

    def tile_embedding(self, index: int) -> Embedding:
        """Tile `index`'s embedding (LRU first, then the session's cache, then the encoder)."""
        window = self.tiles[index]
        key = tile_key(self.image_key, window)
        emb = self._cache.get(key)
        if emb is not None:
            self._cache.move_to_end(key)
            return emb
        image = np.ascontiguousarray(self.read_tile(window.read))
        emb = self.session.embedding(image, key) if hasattr(self.session, "embedding") else self.session.embed(image)
        self.embeds += 1
        self._cache[key] = emb
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return emb

    # ------------------------------------------------------------------------------------------------ helpers

    def _next(self, queue: list[tuple[int, np.ndarray]], visible) -> int:
        """The queue position to decode next: the first tile in view, else the first."""
        if visible is not None:
            for position, (index, _) in enumerate(queue):
                if _meets(self.tiles[index].core, visible):
                    return position
        return 0

    def _decode_tile(self, index: int, local: Prompt) -> tuple[np.ndarray, float]:
        window = self.tiles[index]
        _, _, w, h = window.read
        pred = self.session.predict(self.tile_embedding(index), local, True, (h, w))
        best = pred.best
        return pred.mask(best), float(pred.scores[best])

    def _local_prompt(self, prompt: Prompt, window: TileWindow, seeds: np.ndarray) -> Prompt | None:
        """The prompt in the tile's read frame: the points inside its read window plus `seeds` (full frame), and
        the box clipped to the window; None when nothing positive is left."""
        c0, r0, w, h = window.read
        pts = prompt.points
        inside = (pts[:, 0] >= c0) & (pts[:, 0] < c0 + w) & (pts[:, 1] >= r0) & (pts[:, 1] < r0 + h)
        points = np.vstack([pts[inside], seeds]) - np.array([c0, r0], np.float32)
        labels = np.concatenate([prompt.labels[inside], np.full(len(seeds), POSITIVE, np.int32)])
        box = None
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            bx0, by0, bx1, by1 = max(x0, c0), max(y0, r0), min(x1, c0 + w), min(y1, r0 + h)
            if bx1 > bx0 and by1 > by0:
                box = np.array([bx0 - c0, by0 - r0, bx1 - c0, by1 - r0], np.float32)
        if box is None and not np.any(labels == POSITIVE):
            return None
        return Prompt(points, labels, box)

    def _paste(self, result: TiledResult, window: TileWindow, mask: np.ndarray) -> None:
        """The one-owner rule: keep the tile's mask only inside its core."""
        c0, r0, w, h = window.core
        rc, rr = window.read[0], window.read[1]
        result.mask[r0:r0 + h, c0:c0 + w] = mask[r0 - rr:r0 - rr + h, c0 - rc:c0 - rc + w]
        result.owned[r0:r0 + h, c0:c0 + w] = True

    def _spill(self, window: TileWindow, mask: np.ndarray, prompt: Prompt) -> list[tuple[int, np.ndarray]]:
        """Neighbours whose core the tile's mask reaches through its halo, each with seed points (full frame)."""
        out = []
        rc, rr, rw, rh = window.read
        for j, other in enumerate(self.tiles):
            if other is window:
                continue
            c0, r0, w, h = other.core
            a0, b0 = max(c0, rc), max(r0, rr)
            a1, b1 = min(c0 + w, rc + rw), min(r0 + h, rr + rh)
            if a1 <= a0 or b1 <= b0:
                continue
            if prompt.box is not None:  # a box prompt grows only into tiles the box meets
                x0, y0, x1, y1 = prompt.box
                if not (x0 < c0 + w and x1 > c0 and y0 < r0 + h and y1 > r0):
                    continue
            overlap = mask[b0 - rr:b1 - rr, a0 - rc:a1 - rc]
            if int(np.count_nonzero(overlap)) < self.min_seed:
                continue
            out.append((j, deepest_points(overlap, SEEDS_PER_SIDE) + np.array([a0, b0], np.float32)))
        return out


def merge_levels(refined: np.ndarray, owned: np.ndarray, coarse: np.ndarray, strip: int = 1024) -> np.ndarray:
    """How the two levels meet, in place: `refined` ((H, W) bool, a TiledResult.mask: False outside `owned`) takes
    `coarse` ((H, W) bool, the view-level mask at the full size) outside `owned`; returns `refined`. Row strips of
    `strip` rows bound the temporaries (no (H, W) copy: 100 MB less per refine of a 100 MP map than np.where)."""
    for top in range(0, refined.shape[0], strip):
        rows = slice(top, top + strip)
        refined[rows] |= coarse[rows] & ~owned[rows]
    return refined


def _meets(core: tuple[int, int, int, int], rect: tuple[float, float, float, float]) -> bool:
    c0, r0, w, h = core
    x0, y0, x1, y1 = rect
    return x0 < c0 + w and x1 > c0 and y0 < r0 + h and y1 > r0


def deepest_points(mask: np.ndarray, n: int) -> np.ndarray:
    """(k, 2) float32 (x, y) pixel centres of up to n of the mask's pixels farthest from its edge (and from the
    array's border), one per connected part first, largest distance first."""
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    picks = []
    for part in range(1, count):
        d = np.where(labels == part, dist, -1.0)
        r, c = np.unravel_index(int(np.argmax(d)), d.shape)
        picks.append((float(d[r, c]), c + 0.5, r + 0.5))
    picks.sort(reverse=True)
    return np.array([[x, y] for _, x, y in picks[:n]], np.float32).reshape(-1, 2)


def tile_key(image_key: str, window: TileWindow) -> str:
    """The embedding cache key of a tile: the image's key and the tile's core origin (and read window, so a
    different halo is another entry)."""
    c0, r0, _, _ = window.core
    rc, rr, rw, rh = window.read
    return f"{image_key}-t{c0}x{r0}-r{rc}x{rr}x{rw}x{rh}"


def array_reader(image: np.ndarray) -> ReadTile:
    """read_tile for an image in memory ((H, W, 3) uint8)."""

    def read(window: tuple[int, int, int, int]) -> np.ndarray:
        c0, r0, w, h = window
        return image[r0:r0 + h, c0:c0 + w]

    return read


def map_reader(path, stretch) -> ReadTile:
    """read_tile for a map on disk: `core.geo.raster.read_map(path, window=..., stretch=stretch)` at full
    resolution (no-data pixels black, as the view)."""
    from floodlabel.core.geo.raster import read_map

    def read(window: tuple[int, int, int, int]) -> np.ndarray:
        return read_map(path, window=window, stretch=stretch).rgb

    return read
