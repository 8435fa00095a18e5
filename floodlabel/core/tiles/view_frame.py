"""Decoding prompts of a large image on the embedding of its view: `ViewFrameSession`.

Frames: the *full* frame is the image's own (H, W) (a map's full resolution: where prompts, strokes and the saved
mask live); the *view* frame is the smaller image that was embedded ((h, w) = `embedding.original_size`, long side
<= 2048). A continuous coordinate maps corner to corner: x_view = x * w / W, y_view = y * h / H (pixel (i, j) spans
[j, j+1) x [i, i+1) in both frames).

SAM (any family) sees an image through its 1024 px input, so an embedding of the view is the embedding of the full
image up to the resize; the masks it gives at the full size are the view-frame masks upscaled (bilinear on 0/255,
threshold 127: smooth edges, one view pixel covers W / w map pixels). Full-resolution detail is what the tiled
decode (`tiled`) adds.
"""

from __future__ import annotations

import numpy as np

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.segment.segmenter import Embedding, Prediction


class ViewFrameSession:
    """A session (anything with `predict(embedding, prompt, multimask, output_size, mask_input)`) whose prompts
    are in a `full_size` (H, W) frame while its embeddings are of a view image. Every other attribute is the
    wrapped session's."""

    def __init__(self, session, full_size: tuple[int, int]) -> None:
        self.session = session
        self.full_size = (int(full_size[0]), int(full_size[1]))

    def __getattr__(self, name: str):
        return getattr(self.session, name)

    def predict(self, embedding: Embedding, prompt: Prompt, multimask: bool = True,
                output_size: tuple[int, int] | None = None, mask_input: np.ndarray | None = None) -> Prediction:
        """Decode `prompt` (full frame) on `embedding` (view frame). Masks at output_size (h, w), default the full
        size; sizes larger than the view are upscaled from the view-frame masks."""
        view = tuple(int(v) for v in embedding.original_size)
        out = tuple(int(v) for v in (output_size or self.full_size))
        scaled = scale_prompt(prompt, (view[0] / self.full_size[0], view[1] / self.full_size[1]))
        if out[0] <= view[0] and out[1] <= view[1]:
            return self.session.predict(embedding, scaled, multimask, out, mask_input)
        pred = self.session.predict(embedding, scaled, multimask, view, mask_input)
        return Prediction.lazy(pred.scores, pred.low_res_logits, lambda i: upscale_mask(pred.mask(i), out))


def scale_prompt(prompt: Prompt, scale: tuple[float, float]) -> Prompt:
    """`prompt` with x multiplied by scale[1] and y by scale[0] (corner-to-corner frame change)."""
    sy, sx = scale
    points = prompt.points * np.array([sx, sy], np.float32)
    box = None if prompt.box is None else prompt.box * np.array([sx, sy, sx, sy], np.float32)
    return Prompt(points, prompt.labels, box)


def upscale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool -> (H, W) bool: bilinear on 0/255, kept where >= 128 (one uint8 pass at the output size)."""
    import cv2

    if mask.shape == tuple(size):
        return mask
    small = np.ascontiguousarray(mask, dtype=bool).view(np.uint8) * np.uint8(255)
    big = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.greater_equal(big, 128, out=np.empty(big.shape, bool))
