"""Small previews of a prediction's candidate masks, made from the low-res logits (no upscaling to full size).

In SAM and classic the image occupies the top-left of the 256x256 low-res frame with its long side spanning 256
(SAM: the 1024 input frame / 4; classic: its work image scaled to 256), so the image's part of the logits is
`logits[:h256, :w256]` with (h256, w256) = input_size scaled to a long side of 256. In SAM 2.1 the whole frame is the
image resized to a square (`Prediction.stretched_from` gives its size), so the thumbnail stretches it back.
"""

from __future__ import annotations

import cv2
import numpy as np

from floodlabel.core.segment.segmenter import LOW_RES, Prediction


def low_res_extent(input_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the image's region in the 256x256 low-res frame, given the backend's input (h, w)."""
    h, w = input_size
    scale = LOW_RES / max(h, w)
    return max(1, min(LOW_RES, round(h * scale))), max(1, min(LOW_RES, round(w * scale)))


def candidate_thumbnails(prediction: Prediction, input_size: tuple[int, int], max_side: int = 96) -> list[np.ndarray]:
    """One (h, w) bool thumbnail per candidate, long side `max_side`, aspect of the image (logit > 0 = water)."""
    h, w = low_res_extent(input_size)
    stretched = prediction.stretched_from
    aspect_h, aspect_w = (h, w) if stretched is None else stretched
    scale = max_side / max(aspect_h, aspect_w)
    size = (max(1, round(aspect_w * scale)), max(1, round(aspect_h * scale)))  # cv2 wants (width, height)
    out = []
    for logits in prediction.low_res_logits:
        region = np.ascontiguousarray(logits[:h, :w], np.float32)
        out.append(cv2.resize(region, size, interpolation=cv2.INTER_LINEAR) > 0)
    return out
