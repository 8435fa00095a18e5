"""An offline segmentation backend without weights: OpenCV GrabCut seeded by the SAM prompt.

Frames (in addition to those in segmenter.py):
- work:    the image downscaled (INTER_AREA) so its long side is at most WORK_LONG_SIDE px; never upscaled.
           GrabCut runs here. scale = work / original, the same for x and y up to rounding
           (Embedding.input_size is the work (h, w); Embedding.extra["scale"] holds (sy, sx)).
- low-res: the same 256x256 frame as SAM's: the work image resized so its long side is 256, top-left aligned,
           the rest padding. So `low_res_logits` can be fed back as `mask_input` exactly as with SAM.

How a prompt becomes a GrabCut initialisation (all in the work frame):
- box:             outside = sure background, inside = probable foreground (a box covering the whole image
                   keeps a thin probable-background border so GrabCut has both classes). A box without points
                   also gets a colour prior: the box's water colour is the dominant colour (a Lab histogram mode,
                   refined by mean shift) of its smoothest BOX_SMOOTH_SHARE of pixels (water is smooth; trees,
                   roofs and rubble are textured). Pixels close to that colour and not textured (no more than
                   the box's calmest BOX_CALM_SHARE) are "water-like": inside the box they stay probable
                   foreground and the others become probable background; outside it they become probable
                   foreground too, so the background model does not learn the water's colour
                   when the water goes on past the box (a box drawn over the middle of a river). The result is
                   then cut to the box: nothing outside a box is ever foreground.
- positive points: sure-foreground disks. Without a box, everything starts as probable background and the
                   colour-similar region connected to each point (cv2.floodFill on a smoothed Lab image), every
                   pixel close in colour to the clicked spot, and a generous disk become probable foreground
                   (so the background model does not learn the water's colour).
- negative points: sure-background disks, and the colour-similar region around each (within a bounded radius)
                   becomes sure background too, so a click on a wrong region removes it.
- mask_input:      previous low-res logits; > 0 makes probable background probable foreground and vice versa.
GrabCut runs GRABCUT_ITERATIONS iterations; for a box without points it stops early and keeps the previous
labelling when an iteration leaves under COLLAPSE_SHARE of the initial foreground inside the box. On fragmented
water (aerial photos, water between roofs) GrabCut can otherwise shrink the foreground every iteration until
nothing is left.
(Both fixes are for issue 14: the earlier box rule, smoothest share = probable water and the rest probable
background, with all of the outside sure background, gave both colour models the water's colour whenever the
box held textured water or the water went on past it, and GrabCut emptied the mask.)
Points outside the image are clipped to its border; a box of (near) zero area acts as a positive point at its
centre; an empty prompt raises ValueError; a prompt with only negative points gives empty masks.
"""

from __future__ import annotations

import cv2
import numpy as np

from floodlabel.core.annotation.prompts import NEGATIVE, POSITIVE, Prompt
from floodlabel.core.segment.segmenter import LOW_RES, Capabilities, Embedding, Prediction

WORK_LONG_SIDE = 384
GRABCUT_ITERATIONS = 3
LOGIT_CLIP = 20.0  # |low_res_logits| <= this (distance in low-res pixels, see _signed_distance)
SEED = 12345  # cv2 RNG seed (GrabCut's GMM initialisation uses k-means++ with cv2's RNG)

# Sizes as fractions of the work image's long side.
SURE_DISK = 0.012  # radius of the sure fore/background disk at a point
GROW_DISK = 0.10  # radius of the probable-foreground disk around a positive point (points-only prompts)
NEGATIVE_REACH = 0.12  # how far the colour region of a negative point may reach
COLOUR_TOLERANCE = (14, 6, 6)  # floodFill tolerance per Lab channel (8-bit Lab), from the seed's colour
SIMILAR_COLOUR_DIST = 20.0  # weighted Lab distance (8-bit Lab) to the clicked colour for probable foreground
BOX_SMOOTH_SHARE = 0.6  # box without points: the water colour is looked for in the smoothest 60% of the box
BOX_CALM_SHARE = 0.95  # ... and only its calmest 95% (and pixels as calm elsewhere) can be water: not textured soil
BOX_COLOUR_BIN = 8.0  # Lab histogram bin (weighted 8-bit Lab, as SIMILAR_COLOUR_DIST) for the box's water colour
COLLAPSE_SHARE = 0.5  # an iteration leaving less than this share of GrabCut's initial foreground is undone
MIN_BOX_SIDE = 2.0  # work pixels; a thinner box is treated as a positive point at its centre


class ClassicSegmenter:
    """GrabCut segmenter with SAM's interface; deterministic; no model weights.

    predict returns 3 candidates with multimask=True, in SAM's small-to-large spirit:
      0. the GrabCut foreground components that contain a positive point (the largest one for a box only),
      1. the whole GrabCut foreground,
      2. candidate 1 morphologically smoothed (opening then closing, holes below 0.1 % of the image filled).
    Each score is a heuristic quality estimate in (0, 1), not a calibrated IoU: prompt agreement (share of
    points on the right side of the mask) x boundary contrast (1 - exp(-dE / 20), dE = mean Lab colour
    difference between thin rings just inside and just outside the mask boundary) x sqrt(coverage), coverage
    = share of the whole GrabCut foreground the candidate keeps (so the full water area beats one piece).
    """

    # v2: wider colour seed for points, texture prior in boxes. v3: box masks change (the box's water colour is
    # probable foreground inside and outside the box, the result is cut to the box; GrabCut iterations that
    # collapse the foreground are undone): a box over the middle of the water gave empty masks (issue 14).
    model_id = "classic-grabcut-v3"
    # embed is a resize (milliseconds): caching it would only cost disk; GrabCut takes a good part of a second per
    # prompt (no hover preview); no automatic segments, nothing to train
    capabilities = Capabilities()
    compute_label = "OpenCV GrabCut on the CPU, no weights"

    @property
    def cache_model_id(self) -> str:
        return self.model_id

    @property
    def weights_id(self) -> str:
        return self.model_id

    def embed(self, image: np.ndarray) -> Embedding:
        """image: (H, W, 3) uint8 RGB, original frame. features: the work-frame RGB uint8 copy."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        h0, w0 = image.shape[:2]
        scale = min(1.0, WORK_LONG_SIDE / max(h0, w0))
        h, w = max(1, round(h0 * scale)), max(1, round(w0 * scale))
        work = image if (h, w) == (h0, w0) else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        work = np.ascontiguousarray(work)
        return Embedding(
            features=work,
            original_size=(h0, w0),
            input_size=(h, w),
            model_id=self.model_id,
            extra={"scale": (h / h0, w / w0), "lab": _smoothed_lab(work)},
        )

    def predict(
        self,
        embedding: Embedding,
        prompt: Prompt,
        multimask: bool = True,
        output_size: tuple[int, int] | None = None,
        mask_input: np.ndarray | None = None,
    ) -> Prediction:
        """Segment one prompt (original-frame pixels). Masks at output_size (H, W), default original size.

        Returns masks (C, H, W) bool, scores (C,) float32 and low_res_logits (C, 256, 256) float32, with C = 3
        if multimask else 1 (the best-scoring candidate). Logits are signed distances to the mask boundary in
        low-res pixels (> 0 inside = water), clipped to +-LOGIT_CLIP; padding is -LOGIT_CLIP.
        """
        if not prompt.has_geometry:
            raise ValueError("empty prompt: give at least one point or a box")
        work = embedding.features
        h, w = work.shape[:2]
        out_h, out_w = output_size if output_size is not None else embedding.original_size
        lab = embedding.extra.get("lab")
        if lab is None:  # e.g. an embedding restored from a cache that kept only features
            lab = embedding.extra["lab"] = _smoothed_lab(work)

        pos, neg, box = _prompt_to_work(prompt, embedding)
        init = _grabcut_init(lab, pos, neg, box, mask_input)
        if init is None:  # nothing can be foreground (only negative points)
            candidates = [np.zeros((h, w), bool)] * 3
        else:
            region = None  # the box: the result is cut to it (and a box alone is guarded against collapse in it)
            if box is not None:
                x0, y0, x1, y1 = box
                region = np.zeros((h, w), bool)
                region[y0:y1, x0:x1] = True
            fg = _run_grabcut(work, init, region if not len(pos) else None)  # points keep fg from emptying
            if region is not None:
                fg &= region
            candidates = [_components_at(fg, pos, box), fg, _smooth(fg)]
        scores = np.array([_score(lab, c, candidates[1], pos, neg) for c in candidates], np.float32)
        if not multimask:
            best = int(np.argmax(scores))
            candidates, scores = [candidates[best]], scores[best : best + 1]

        sdf = [_signed_distance(c) for c in candidates]
        masks = np.stack([cv2.resize(d, (out_w, out_h), interpolation=cv2.INTER_LINEAR) > 0 for d in sdf])
        low_res = np.stack([_to_low_res(d) for d in sdf])
        return Prediction(masks=masks, scores=scores, low_res_logits=low_res)


# --- prompt -> GrabCut initialisation ------------------------------------------------------------


def _prompt_to_work(prompt: Prompt, emb: Embedding) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Positive and negative points as (N, 2) int (x, y) work pixels, clipped; box as int (x0, y0, x1, y1) or None.

    A box thinner than MIN_BOX_SIDE work pixels becomes a positive point at its centre.
    """
    h, w = emb.input_size
    sy, sx = emb.extra.get("scale", (h / emb.original_size[0], w / emb.original_size[1]))
    pts = prompt.points.astype(np.float64)
    # pixel centres map onto pixel centres (the convention cv2.resize uses)
    xy = np.column_stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5])
    xy = np.column_stack([np.clip(np.round(xy[:, 0]), 0, w - 1), np.clip(np.round(xy[:, 1]), 0, h - 1)]).astype(int)
    pos, neg = xy[prompt.labels == POSITIVE], xy[prompt.labels == NEGATIVE]
    box = None
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box.astype(np.float64) * [sx, sy, sx, sy]
        x0, x1 = np.clip([x0, x1], 0, w)
        y0, y1 = np.clip([y0, y1], 0, h)
        if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
            centre = [[min(int((x0 + x1) / 2), w - 1), min(int((y0 + y1) / 2), h - 1)]]
            pos = np.vstack([pos, centre]).astype(int)
        else:
            box = np.array([int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))])
    return pos, neg, box


def _grabcut_init(
    lab: np.ndarray, pos: np.ndarray, neg: np.ndarray, box: np.ndarray | None, mask_input: np.ndarray | None
) -> np.ndarray | None:
    """(h, w) uint8 GrabCut label map (GC_BGD/FGD/PR_BGD/PR_FGD), or None if no pixel can be foreground."""
    h, w = lab.shape[:2]
    long_side = max(h, w)
    sure_r = max(2, round(SURE_DISK * long_side))
    init = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        init[:] = cv2.GC_BGD
        init[y0:y1, x0:x1] = cv2.GC_PR_FGD
        if x0 == 0 and y0 == 0 and x1 == w and y1 == h:  # whole image: GrabCut still needs background samples
            border = max(1, round(0.01 * long_side))
            init[:border, :] = init[-border:, :] = init[:, :border] = init[:, -border:] = cv2.GC_PR_BGD
        if not len(pos):
            inside = init == cv2.GC_PR_FGD
            if inside.sum() >= 50:
                water = _box_water(lab, inside)
                init[inside & ~water] = cv2.GC_PR_BGD
                init[~inside & water & (init == cv2.GC_BGD)] = cv2.GC_PR_FGD
    else:
        grow_r = max(3, round(GROW_DISK * long_side))
        for x, y in pos:
            region = _colour_region(lab, x, y) | _similar_colour(lab, x, y, sure_r)
            cv2.circle(region, (int(x), int(y)), grow_r, 1, -1)
            init[region.astype(bool)] = cv2.GC_PR_FGD
    if mask_input is not None:
        prior = _from_low_res(np.asarray(mask_input, np.float32), (h, w)) > 0
        soft = (init == cv2.GC_PR_BGD) | (init == cv2.GC_PR_FGD)
        init[soft & prior] = cv2.GC_PR_FGD
        init[soft & ~prior] = cv2.GC_PR_BGD
    reach = max(4, round(NEGATIVE_REACH * long_side))
    for x, y in neg:
        region = _colour_region(lab, x, y)
        limit = np.zeros((h, w), np.uint8)
        cv2.circle(limit, (int(x), int(y)), reach, 1, -1)
        cv2.circle(region, (int(x), int(y)), sure_r, 1, -1)
        init[(region & limit).astype(bool)] = cv2.GC_BGD
    for x, y in pos:  # positive clicks win over negative regions that reach them
        cv2.circle(init, (int(x), int(y)), sure_r, int(cv2.GC_FGD), -1)

    is_fg = (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)
    if not is_fg.any():
        return None
    if is_fg.all():
        init[0, :] = init[-1, :] = init[:, 0] = init[:, -1] = cv2.GC_PR_BGD
        for x, y in pos:
            cv2.circle(init, (int(x), int(y)), sure_r, int(cv2.GC_FGD), -1)
    return init


def _box_water(lab: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels anywhere that look like the water of a box without points: within
    SIMILAR_COLOUR_DIST of the box's water colour and no more textured (7x7 lightness std) than the box's
    calmest BOX_CALM_SHARE of pixels `inside`. The water colour is the dominant colour of the box's smoothest
    BOX_SMOOTH_SHARE of pixels: the mode of their weighted-Lab histogram (bins of BOX_COLOUR_BIN), refined by a
    few mean-shift steps (lightness counts half, as in _similar_colour). Never empty inside the box (falls back
    to its smooth pixels)."""
    texture = _local_std(lab[..., 0])
    smooth = texture <= np.quantile(texture[inside], BOX_SMOOTH_SHARE)
    weights = np.float32([0.5, 1.0, 1.0])
    pix = lab[inside & smooth].astype(np.float32) * weights
    q = np.floor(pix / BOX_COLOUR_BIN).astype(np.int64)
    q -= q.min(0)
    dims = tuple(int(d) for d in q.max(0) + 1)
    flat = np.ravel_multi_index(tuple(q.T), dims)
    mode = int(np.argmax(np.bincount(flat)))
    seed = pix[flat == mode].mean(0)
    for _ in range(5):  # mean shift towards the densest colour nearby
        near = np.linalg.norm(pix - seed, axis=1) < SIMILAR_COLOUR_DIST
        seed = pix[near].mean(0)
    calm = texture <= np.quantile(texture[inside], BOX_CALM_SHARE)
    water = calm & (np.linalg.norm(lab.astype(np.float32) * weights - seed, axis=2) < SIMILAR_COLOUR_DIST)
    if not (water & inside).any():
        water = smooth
    return water


def _colour_region(lab: np.ndarray, x: int, y: int) -> np.ndarray:
    """(h, w) uint8 0/1: the pixels connected to (x, y) whose smoothed Lab colour is within COLOUR_TOLERANCE
    of the seed's (cv2.floodFill, fixed range)."""
    h, w = lab.shape[:2]
    ff_mask = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    cv2.floodFill(lab, ff_mask, (int(x), int(y)), 0, COLOUR_TOLERANCE, COLOUR_TOLERANCE, flags)
    return ff_mask[1:-1, 1:-1].copy()


def _similar_colour(lab: np.ndarray, x: int, y: int, radius: int) -> np.ndarray:
    """(h, w) uint8 0/1: pixels anywhere whose smoothed Lab colour lies within SIMILAR_COLOUR_DIST of the mean
    colour of the disk of the given radius at (x, y) (lightness counts half, shading varies more than hue)."""
    disk = np.zeros(lab.shape[:2], np.uint8)
    cv2.circle(disk, (int(x), int(y)), radius, 1, -1)
    seed = np.asarray(cv2.mean(lab, disk)[:3], np.float32)
    diff = (lab.astype(np.float32) - seed) * np.float32([0.5, 1.0, 1.0])
    return (np.linalg.norm(diff, axis=2) < SIMILAR_COLOUR_DIST).astype(np.uint8)


def _run_grabcut(work: np.ndarray, init: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """(h, w) bool GrabCut foreground from the label map init (seeded, so deterministic).

    With a region (the box of a box prompt), the GRABCUT_ITERATIONS iterations run one call at a time (the
    same result as one call with all of them): an iteration that leaves less than COLLAPSE_SHARE of init's
    foreground inside region is undone and the iterations stop, so a collapsing GrabCut returns its last sound
    labelling, at worst init. Without one (points only: their sure-foreground disks keep the mask from
    emptying) the iterations run in one call, unguarded.
    """
    labels = init.copy()
    if not ((labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD)).any():
        return labels != cv2.GC_BGD  # no background samples (tiny image): the prompt is the answer
    if region is None:
        cv2.setRNGSeed(SEED)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(work, labels, None, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
        return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)

    def foreground_area(lab: np.ndarray) -> int:
        return int(np.count_nonzero(((lab == cv2.GC_FGD) | (lab == cv2.GC_PR_FGD)) & region))

    floor = COLLAPSE_SHARE * foreground_area(labels)
    cv2.setRNGSeed(SEED)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    mode = cv2.GC_INIT_WITH_MASK
    for _ in range(GRABCUT_ITERATIONS):
        before = labels.copy()
        cv2.grabCut(work, labels, None, bgd, fgd, 1, mode)
        mode = cv2.GC_EVAL
        if foreground_area(labels) < floor:
            labels = before
            break
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


# --- candidates and scores -----------------------------------------------------------------------


def _components_at(fg: np.ndarray, pos: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """The 8-connected components of fg containing a positive point; for a box without points, the largest."""
    n, comp = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    if n <= 1:
        return fg.copy()
    ids = {int(comp[y, x]) for x, y in pos} - {0}
    if not ids and box is not None and not len(pos):
        areas = np.bincount(comp.ravel(), minlength=n)[1:]
        ids = {int(np.argmax(areas)) + 1}
    return np.isin(comp, list(ids))


def _smooth(fg: np.ndarray) -> np.ndarray:
    """fg opened then closed with an elliptic kernel (~1 % of the long side), small holes filled."""
    k = max(3, round(0.01 * max(fg.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    out = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, kernel)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(1 - out, connectivity=4)
    small = stats[:, cv2.CC_STAT_AREA] < 0.001 * fg.size
    border_ids = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
    small[border_ids] = False  # background touching the border is not a hole
    small[0] = False  # label 0 is the foreground itself (zeros of 1 - out)
    return out.astype(bool) | small[comp]


def _score(lab: np.ndarray, mask: np.ndarray, fg: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """Heuristic quality in (0, 1): prompt agreement x boundary contrast x sqrt(coverage of the GrabCut
    foreground fg) (see ClassicSegmenter)."""
    if not mask.any():
        return 0.01
    coverage = np.count_nonzero(mask & fg) / max(1, np.count_nonzero(fg))
    hits = sum(bool(mask[y, x]) for x, y in pos) + sum(not mask[y, x] for x, y in neg)
    agreement = hits / (len(pos) + len(neg)) if len(pos) + len(neg) else 1.0
    kernel = np.ones((5, 5), np.uint8)
    m = mask.astype(np.uint8)
    inner = m.astype(bool) & ~cv2.erode(m, kernel).astype(bool)
    outer = cv2.dilate(m, kernel).astype(bool) & ~m.astype(bool)
    if not inner.any() or not outer.any():  # whole image
        contrast = 0.5
    else:
        lab_f = lab.astype(np.float32)
        delta = np.linalg.norm(lab_f[inner].mean(0) - lab_f[outer].mean(0))
        contrast = 1.0 - np.exp(-delta / 20.0)
    return float(np.clip(agreement * contrast * np.sqrt(coverage), 0.01, 0.99))


# --- soft maps and frames ------------------------------------------------------------------------


def _local_std(channel: np.ndarray) -> np.ndarray:
    """(h, w) float32 standard deviation of a uint8 channel over 7x7 neighbourhoods (a texture measure)."""
    x = channel.astype(np.float32)
    mean = cv2.blur(x, (7, 7))
    return np.sqrt(np.maximum(cv2.blur(x * x, (7, 7)) - mean * mean, 0))


def _smoothed_lab(work: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 Lab of a slightly blurred work image (colour comparisons ignore fine texture)."""
    return cv2.cvtColor(cv2.GaussianBlur(work, (5, 5), 0), cv2.COLOR_RGB2LAB)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """(h, w) float32 signed distance to the mask boundary in work pixels: > 0 inside, < 0 outside.

    The boundary (the 0 level) lies halfway between pixel centres, so bilinear upscaling of this map and
    thresholding at 0 gives a smooth outline instead of blocks.
    """
    m = mask.astype(np.uint8)
    if not m.any():
        return np.full(m.shape, -LOGIT_CLIP, np.float32)
    if m.all():
        return np.full(m.shape, LOGIT_CLIP, np.float32)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    return np.where(m.astype(bool), inside - 0.5, 0.5 - outside).astype(np.float32)


def _to_low_res(sdf: np.ndarray) -> np.ndarray:
    """(256, 256) float32 logits in SAM's low-res frame from a work-frame signed distance map."""
    h, w = sdf.shape
    f = LOW_RES / max(h, w)
    lh, lw = max(1, round(h * f)), max(1, round(w * f))
    out = np.full((LOW_RES, LOW_RES), -LOGIT_CLIP, np.float32)
    out[:lh, :lw] = np.clip(cv2.resize(sdf, (lw, lh), interpolation=cv2.INTER_LINEAR) * f, -LOGIT_CLIP, LOGIT_CLIP)
    return out


def _from_low_res(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) float32: the image part of a (256, 256) low-res logit map resized to the work size (h, w)."""
    h, w = size
    logits = logits.reshape(logits.shape[-2:])
    f = LOW_RES / max(h, w)
    lh, lw = max(1, round(h * f)), max(1, round(w * f))
    return cv2.resize(logits[:lh, :lw], (w, h), interpolation=cv2.INTER_LINEAR)
