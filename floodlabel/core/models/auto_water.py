"""Auto: SAM's automatic segments, chosen by the user's clicks, as one water mask.

    mask = auto_water_mask(session, image, embedding, prompt, progress=bar_update, checkpoint=cp)

AMG (core/auto_mask) cuts the image into segments from a grid of point prompts; a segment is water when it holds
a positive click and no negative one (auto_mask.water_mask_from_segments). The prompt's box is not used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator

from floodlabel.core.sam.auto_mask import DEFAULT_AMG_KWARGS, water_mask_from_segments
from floodlabel.core.common.cancel import Checkpoint
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.segment.segmenter import Embedding

NEEDS_SAM = "Auto needs a SAM model (vit_b, vit_l or vit_h): the classic backend has no automatic segments"
NEEDS_POINT = "Click on water first: Auto keeps the automatic segments that contain a positive point"

# progress fractions at the coarse stages; the batches of point prompts fill the range in between
_EMBEDDED, _SEGMENTS_DONE = 0.1, 0.95


def auto_water_mask(
    session: SegmentationSession,
    image: np.ndarray,
    embedding: Embedding | None,
    prompt: Prompt,
    progress: Callable[[float], None] | None = None,
    checkpoint: Checkpoint | None = None,
    **amg_kwargs: Any,
) -> np.ndarray:
    """The union of the AMG segments that contain a positive point of `prompt` and none of its negative points.

    image: (H, W, 3) uint8 RGB, original frame. embedding: the session's embedding of `image` (reused for the
    full-image crop; None or another model's -> computed here). prompt: points in the original frame.
    progress(fraction in [0, 1]) is called at 0, after the embedding, after each batch of `points_per_batch`
    point prompts, when the segments are done and at 1 when the mask is done. checkpoint() is called before
    each batch and between encoder blocks (it may raise core.cancel.Cancelled). amg_kwargs override
    auto_mask.DEFAULT_AMG_KWARGS. Returns an (H, W) bool mask (empty when no segment holds a positive point).
    Raises FloodLabelError for the classic backend or a prompt without a positive point.
    """
    if not session.segmenter.capabilities.auto_masks:
        raise FloodLabelError(NEEDS_SAM)
    labels = np.asarray(prompt.labels)
    if not np.any(labels == 1):
        raise FloodLabelError(NEEDS_POINT)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    report = progress or (lambda fraction: None)
    report(0.0)
    generator = _SteppedGenerator(session, image, embedding, checkpoint, report, {**DEFAULT_AMG_KWARGS, **amg_kwargs})
    segments = generator.generate(image)
    report(_SEGMENTS_DONE)
    points = np.asarray(prompt.points, np.float32).reshape(-1, 2)
    mask = water_mask_from_segments(segments, image.shape[:2], points[labels == 1], points[labels == 0])
    report(1.0)
    return mask


# ----------------------------------------------------------------------------------------------------- helpers


class _SteppedGenerator(SamAutomaticMaskGenerator):
    """SamAutomaticMaskGenerator that embeds through the session's segmenter (block-wise, with the checkpoint),
    reuses a given embedding for the full-image crop, and reports progress per batch of point prompts."""

    def __init__(
        self,
        session: SegmentationSession,
        image: np.ndarray,
        embedding: Embedding | None,
        checkpoint: Checkpoint | None,
        report: Callable[[float], None],
        amg_kwargs: dict[str, Any],
    ) -> None:
        super().__init__(session.segmenter.model, **amg_kwargs)
        self._segmenter = session.segmenter
        self._full_size = tuple(image.shape[:2])
        usable = embedding is not None and embedding.model_id == session.model_id
        self._embedding = embedding if usable and tuple(embedding.original_size) == self._full_size else None
        self._checkpoint = checkpoint
        self._report = report
        self._batches_done = 0
        self._batches_total = self._count_batches()
        self.predictor.set_image = self._set_image  # instance attribute: only this generator's predictor

    def _count_batches(self) -> int:
        per_batch = self.points_per_batch
        return max(1, sum((4 ** layer) * -(-len(grid) // per_batch) for layer, grid in enumerate(self.point_grids)))

    def _set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """SamPredictor.set_image for one crop ((h, w, 3) uint8 RGB), from the session's encoder."""
        embedding = self._embedding
        if embedding is None or tuple(image.shape[:2]) != self._full_size:
            crop = np.ascontiguousarray(image)
            if self._checkpoint is None:
                embedding = self._segmenter.embed(crop)
            else:
                embedding = self._segmenter.embed(crop, checkpoint=self._checkpoint)
        predictor = self.predictor
        predictor.reset_image()
        predictor.original_size = tuple(image.shape[:2])
        predictor.input_size = tuple(embedding.input_size)
        features = embedding.features
        if not torch.is_tensor(features):
            features = torch.from_numpy(np.asarray(features))
        predictor.features = features.to(predictor.device, torch.float32)  # (1, 256, 64, 64)
        predictor.is_image_set = True
        if self._batches_done == 0:
            self._report(_EMBEDDED)

    def _process_batch(self, *args: Any, **kwargs: Any):
        if self._checkpoint is not None:
            self._checkpoint()
        data = super()._process_batch(*args, **kwargs)
        self._batches_done += 1
        done = min(1.0, self._batches_done / self._batches_total)
        self._report(_EMBEDDED + (_SEGMENTS_DONE - _EMBEDDED) * done)
        return data
