"""Auto: SAM's automatic segments, chosen by the user's clicks, as one water mask.

    mask = auto_water_mask(session, image, embedding, prompt, progress=bar_update, checkpoint=cp)

AMG (core/auto_mask) cuts the image into segments from a grid of point prompts; a segment is water when it holds
a positive click and no negative one (auto_mask.water_mask_from_segments). The prompt's box is not used.
SAM v1 runs segment_anything's SamAutomaticMaskGenerator, SAM 2.1 sam2's SAM2AutomaticMaskGenerator (same options,
same segment dicts); both embed through the session's segmenter and reuse its embedding of the full image.
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

NEEDS_SAM = ("Auto needs a SAM model (vit_b, vit_l, vit_h or SAM 2.1): the classic backend has no automatic "
             "segments")
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
    generator = stepped_generator(session, image, embedding, checkpoint, report, {**DEFAULT_AMG_KWARGS, **amg_kwargs})
    segments = generator.generate(image)
    report(_SEGMENTS_DONE)
    points = np.asarray(prompt.points, np.float32).reshape(-1, 2)
    mask = water_mask_from_segments(segments, image.shape[:2], points[labels == 1], points[labels == 0])
    report(1.0)
    return mask


def stepped_generator(
    session: SegmentationSession,
    image: np.ndarray,
    embedding: Embedding | None,
    checkpoint: Checkpoint | None,
    report: Callable[[float], None],
    amg_kwargs: dict[str, Any],
):
    """The session's family's automatic mask generator (SAM: SamAutomaticMaskGenerator; SAM 2.1:
    SAM2AutomaticMaskGenerator), embedding through the session's segmenter and reusing `embedding` for the full
    image, reporting progress per batch and calling `checkpoint` between batches. `.generate(image)` -> segments."""
    if _is_sam2(session):
        return _sam2_generator(session, image, embedding, checkpoint, report, amg_kwargs)
    return _SteppedGenerator(session, image, embedding, checkpoint, report, amg_kwargs)


# ----------------------------------------------------------------------------------------------------- helpers


def _is_sam2(session: SegmentationSession) -> bool:
    """Whether the session runs SAM 2.1: which family's AMG runs (both declare auto_masks; this picks the code)."""
    from floodlabel.core.sam2.backend import Sam2Segmenter  # no sam2 import: that happens when one is built

    return isinstance(session.segmenter, Sam2Segmenter)


class _Stepping:
    """What both families' stepped generators share: the session's encoder (block-wise, with the checkpoint), the
    given embedding reused for the full-image crop, progress per batch of point prompts, cancel between batches.
    `_install(embedding, image)` puts an embedding into the family's predictor."""

    def _setup(self, session, image, embedding, checkpoint, report) -> None:
        self._segmenter = session.segmenter
        self._full_size = tuple(image.shape[:2])
        usable = embedding is not None and embedding.model_id == session.model_id
        self._embedding = embedding if usable and tuple(embedding.original_size) == self._full_size else None
        self._checkpoint = checkpoint
        self._report = report
        self._batches_done = 0
        per_batch = self.points_per_batch
        self._batches_total = max(1, sum((4 ** layer) * -(-len(grid) // per_batch)
                                         for layer, grid in enumerate(self.point_grids)))
        self.predictor.set_image = self._set_image  # instance attribute: only this generator's predictor

    def _set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        embedding = self._embedding
        if embedding is None or tuple(image.shape[:2]) != self._full_size:
            crop = np.ascontiguousarray(image)
            if self._checkpoint is None:
                embedding = self._segmenter.embed(crop)
            else:
                embedding = self._segmenter.embed(crop, checkpoint=self._checkpoint)
        self._install(embedding, image)
        if self._batches_done == 0:
            self._report(_EMBEDDED)

    def _process_batch(self, *args: Any, **kwargs: Any):
        if self._checkpoint is not None:
            self._checkpoint()
        data = super()._process_batch(*args, **kwargs)  # type: ignore[misc]
        self._batches_done += 1
        done = min(1.0, self._batches_done / self._batches_total)
        self._report(_EMBEDDED + (_SEGMENTS_DONE - _EMBEDDED) * done)
        return data


def _sam2_generator(session, image, embedding, checkpoint, report, amg_kwargs):
    """sam2's SAM2AutomaticMaskGenerator, stepped (see _Stepping); sam2 is imported only when SAM 2.1 runs."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    class Sam2SteppedGenerator(_Stepping, SAM2AutomaticMaskGenerator):
        def _install(self, emb: Embedding, crop: np.ndarray) -> None:
            """SAM2ImagePredictor.set_image's state, from a SAM 2.1 embedding of `crop`."""
            predictor = self.predictor
            predictor.reset_predictor()
            f = {k: torch.as_tensor(v).to(predictor.device, torch.float32) for k, v in emb.features.items()}
            predictor._features = {"image_embed": f["image_embed"],
                                   "high_res_feats": [f["high_res_feats_0"], f["high_res_feats_1"]]}
            predictor._orig_hw = [tuple(crop.shape[:2])]
            predictor._is_image_set = True

    generator = Sam2SteppedGenerator(session.segmenter.model, **amg_kwargs)
    generator._setup(session, image, embedding, checkpoint, report)
    return generator


class _SteppedGenerator(_Stepping, SamAutomaticMaskGenerator):
    """SamAutomaticMaskGenerator, stepped (see _Stepping)."""

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
        self._setup(session, image, embedding, checkpoint, report)

    def _install(self, embedding: Embedding, image: np.ndarray) -> None:
        """SamPredictor.set_image's state, from a SAM embedding of `image` (one crop, (h, w, 3) uint8 RGB)."""
        predictor = self.predictor
        predictor.reset_image()
        predictor.original_size = tuple(image.shape[:2])
        predictor.input_size = tuple(embedding.input_size)
        features = embedding.features
        if not torch.is_tensor(features):
            features = torch.from_numpy(np.asarray(features))
        predictor.features = features.to(predictor.device, torch.float32)  # (1, 256, 64, 64)
        predictor.is_image_set = True
