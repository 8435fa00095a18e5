"""The 'auto' prompt of `eval`: SAM's automatic mask generation (AMG) scored as a water mask.

AMG cuts the image into segments from a 16 x 16 grid of point prompts (auto_mask.DEFAULT_AMG_KWARGS); nobody
clicks and nothing is drawn. The seed notebook's automatic mode had no user input either, so the segments are
turned into one water mask by auto_mask's *oracle* rule: a segment counts as water when at least half of it lies
in the ground-truth water (`water_mask_from_segments(..., gt=gt)`). That makes the 'auto' row an upper bound of
what AMG's segments can give for water with no prompt at all, next to the point and box rows.

The full-image crop reuses the session's embedding (cache included); AMG runs on SAM only.
"""

from __future__ import annotations

import numpy as np

from floodlabel.core.sam.auto_mask import water_mask_from_segments
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.segment.segmenter import Embedding

AMG_KWARGS: dict = {}
"""Overrides of auto_mask.DEFAULT_AMG_KWARGS for eval's auto rows (none: a 16 x 16 grid, 64 points per batch)."""

AUTO_MIN_OVERLAP = 0.5
"""A segment is water when |segment & gt| / |segment| >= AUTO_MIN_OVERLAP (auto_mask's oracle rule)."""

NEEDS_SAM = "automatic mask generation needs a SAM model (vit_b, vit_l, vit_h or a .pth): classic has none"


def supports_auto(session) -> bool:
    """True when the session's segmenter declares automatic mask generation (Capabilities.auto_masks)."""
    return session.segmenter.capabilities.auto_masks


def auto_water_prediction(session, image: np.ndarray, embedding: Embedding, gt: np.ndarray) -> tuple[np.ndarray, float]:
    """(water mask, score) for one image: AMG segments chosen by the GT (oracle rule above).

    score: the mean predicted IoU of the chosen segments (0.0 when none is chosen), SAM's own estimate.
    Raises FloodLabelError for a segmenter that is not a SAM.
    """
    if not supports_auto(session):
        raise FloodLabelError(NEEDS_SAM)
    from floodlabel.core.sam.auto_mask import DEFAULT_AMG_KWARGS
    from floodlabel.core.models.auto_water import stepped_generator  # AMG that reuses the session's embedding

    generator = stepped_generator(session, image, embedding, None, lambda fraction: None,
                                  {**DEFAULT_AMG_KWARGS, **AMG_KWARGS})
    segments = generator.generate(image)
    gt = np.asarray(gt, bool)
    mask = water_mask_from_segments(segments, gt.shape, gt=gt, min_overlap=AUTO_MIN_OVERLAP)
    chosen = []
    for segment in segments:
        seg = np.asarray(segment["segmentation"], bool)
        area = np.count_nonzero(seg)
        if area and np.count_nonzero(seg & gt) / area >= AUTO_MIN_OVERLAP:
            chosen.append(float(segment["predicted_iou"]))
    return mask, float(np.mean(chosen)) if chosen else 0.0
