"""Compare mode: a second model (B) decodes the same prompts as the main one (A) on every change.

B's prediction is its raw output (its best candidate; the user's brush strokes belong to A's mask). When B shares
A's image encoder (a fine-tuned decoder and its base, or the same model), B reuses A's embedding: comparing costs
one extra decode per prompt, no encode. Another encoder gets its own embedding, computed once per image in B's
worker thread (cache first). B decodes in its own latest-request-wins worker, so A's clicks never wait for B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.annotation import view_size
from floodlabel.core.evaluation.metrics import MaskMetrics, mask_metrics
from floodlabel.core.tiles.view_frame import ViewFrameSession
from floodlabel.gui.window.segmentation_controller import SegmentationController
from floodlabel.gui.workers.latest_request import LatestRequestWorker


@dataclass(frozen=True)
class Compared:
    """B's result for one prompt: view_mask (h, w) bool at A's view size, metrics against the GT (or None)."""

    key: tuple
    view_mask: np.ndarray
    metrics: MaskMetrics | None
    score: float


class CompareController(QObject):
    """Signals: changed(B view mask | None, diff view mask | None, B metrics | None), failed(message)."""

    changed = Signal(object, object, object)
    failed = Signal(str)

    def __init__(self, main: SegmentationController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.main = main
        self.session = None
        self.result: Compared | None = None
        self._a_mask: np.ndarray | None = None
        self._embeddings: dict[str, object] = {}  # image key -> B's embedding (another encoder only)
        self._request = 0
        self.worker = LatestRequestWorker("floodlabel-compare", passing=True)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)

    @property
    def active(self) -> bool:
        return self.session is not None

    def set_session(self, session) -> None:
        """Compare against `session` (a SegmentationSession), or leave compare mode with None."""
        self.session = session
        self.result = None
        self._embeddings.clear()
        self.update(self._a_mask)

    def update(self, a_view_mask: np.ndarray | None = None) -> None:
        """A's shown mask changed (connected to the main controller's mask_changed): decode B when the prompt did."""
        self._a_mask = a_view_mask
        main = self.main
        if self.session is None:
            self.changed.emit(None, None, None)
            return
        if main.item is None or main.annotation is None or main.annotation.prompt.is_empty:
            self.result = None
            size = view_size(main.item.original_size) if main.item is not None else (1, 1)
            self.changed.emit(np.zeros(size, bool), None, None)
            return
        key = self._key()
        if self.result is not None and self.result.key == key:
            self._emit()
            return
        if main.embedding is None:
            return  # decoded when A's embedding is ready (A's mask changes then)
        self._submit(key)

    def refresh(self) -> None:
        """Emit again (A's metrics changed, for the titles)."""
        if self.session is not None and self.result is not None:
            self.update(self._a_mask)

    def shutdown(self, timeout: float = 5.0) -> None:
        self.worker.stop()
        self.worker.join(timeout)

    # ------------------------------------------------------------------------------------------------ helpers

    def _key(self) -> tuple:
        main = self.main
        return (main.row, repr(main.annotation.prompt.to_dict()), self.session.model_id if self.session else "")

    def _submit(self, key: tuple) -> None:
        main, session = self.main, self.session
        item, prompt, a_emb = main.item, main.annotation.prompt, main.embedding
        size = view_size(item.original_size)
        embeddings = self._embeddings
        if tuple(item.image.shape[:2]) != tuple(item.original_size):  # a large map: embeddings are of its view
            decoder = ViewFrameSession(session, item.original_size)  # and prompts of the full frame
        else:
            decoder = session

        def job() -> Compared:
            if session.model_id == a_emb.model_id:
                emb = a_emb  # same encoder: no second embedding
            else:
                emb = embeddings.get(item.key)
                if emb is None:
                    if len(embeddings) >= 4:
                        embeddings.clear()  # a few images' worth, not the whole session's
                    emb = embeddings[item.key] = session.embedding(item.image, item.key)
            pred = decoder.predict(emb, prompt, multimask=True, output_size=size)
            best = pred.best
            view_mask = pred.mask(best)
            metrics = None
            if item.gt is not None:
                native = view_mask if size == item.original_size else \
                    decoder.predict(emb, prompt, multimask=True).mask(best)
                metrics = mask_metrics(native, item.gt)
            return Compared(key, view_mask, metrics, float(pred.scores[best]))

        self._request += 1
        self.worker.submit(self._request, job)

    def _on_done(self, request_id: int, result: Compared) -> None:
        if request_id != self._request or self.session is None:
            return
        self.result = result
        if self.main.annotation is not None and result.key == self._key():
            self._emit()

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self._request:
            self.failed.emit(f"Compare model: {message}")

    def _emit(self) -> None:
        b = self.result.view_mask
        a = self._a_mask
        diff = (a ^ b) if a is not None and a.shape == b.shape else b
        self.changed.emit(b, diff, self.result.metrics)
