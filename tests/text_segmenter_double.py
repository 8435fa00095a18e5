"""A TEST DOUBLE of a text-prompt model (SAM 3's place in tests that are about the window, the store and the CLI, not
about a model). It is not a segmentation model and proves nothing about one.

    double = TextSegmenterDouble({image_key(image): water_mask, ...}, scores=(0.9, 0.6, 0.3))
    session = SegmentationSession(double)

It wraps the classic backend for `embed` and `predict` (points and boxes work as with classic) and answers
`segment_text` from the water masks it was *given*: each 8-connected component of the image's water mask (largest
first) is one instance, with the scores set by the test (cycled when there are more components), boxes around
them, masks at the requested size (nearest neighbour). An image it was not given has no instances. `calls` counts
`segment_text` calls, so a test can check that a threshold change did not run the "model" again.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from floodlabel.core.classic.backend import ClassicSegmenter
from floodlabel.core.common.hashing import image_key
from floodlabel.core.segment.segmenter import Capabilities, Embedding, Instances


class TextSegmenterDouble(ClassicSegmenter):
    model_id = "text-double-v1"
    capabilities = Capabilities(text_prompt=True)

    def __init__(self, water: dict[str, np.ndarray], scores: tuple[float, ...] = (0.9, 0.6, 0.3),
                 delay: float = 0.0) -> None:
        super().__init__()
        self.water = {k: np.asarray(v, bool) for k, v in water.items()}
        self.scores = tuple(float(s) for s in scores)
        self.delay = delay  # seconds segment_text waits (a slow model, for progress/cancel tests)
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def compute_label(self) -> str:
        return "text-prompt test double (classic underneath)"

    def embed(self, image: np.ndarray) -> Embedding:
        embedding = super().embed(image)
        embedding.extra["double_key"] = image_key(image)
        embedding.model_id = self.model_id
        return embedding

    def predict(self, embedding, prompt, multimask=True, output_size=None, mask_input=None):
        return super().predict(embedding, prompt, multimask, output_size, mask_input)

    def segment_text(self, embedding: Embedding, phrase: str,
                     output_size: tuple[int, int] | None = None) -> Instances:
        with self._lock:
            self.calls += 1
        if self.delay:
            threading.Event().wait(self.delay)
        h, w = output_size or embedding.original_size
        water = self.water.get(embedding.extra.get("double_key", ""))
        if water is None:
            return Instances(np.zeros((0, h, w), bool), np.zeros(0, np.float32), np.zeros((0, 4), np.float32), phrase)
        if water.shape != (h, w):
            water = cv2.resize(water.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(water.astype(np.uint8), connectivity=8)
        order = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
        masks = np.stack([labels == i for i in order]) if order else np.zeros((0, h, w), bool)
        scores = np.array([self.scores[k % len(self.scores)] for k in range(len(order))], np.float32)
        boxes = np.array([[stats[i, 0], stats[i, 1], stats[i, 0] + stats[i, 2], stats[i, 1] + stats[i, 3]]
                          for i in order], np.float32).reshape(-1, 4)
        return Instances(masks, scores, boxes, phrase)
