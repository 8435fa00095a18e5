"""The text prompt for the segmentation controller: the concept prompt ("water") run in a worker, the instances it
returned kept per image, and the model mask made from them by `core.annotation.text_step`'s rule (kept instances are
the base, a positive point/box decode adds, negatives drop the instance under them, strokes last).

The model runs once per (image, model weights, phrase): a threshold change or an instance toggle re-filters the kept
instances on the UI thread (a union of boolean masks at the view size, milliseconds). The instances are decoded at
the view size (`view_size(original_size)`, long side <= 2048); the mask that would be saved is their union resized
to the native size (nearest neighbour) for larger images.

Cancel: `segment_text` is one model call with no checkpoint inside, so Cancel drops its result when it comes back
(the worker thread finishes the call); the panel says so.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.annotation import Annotation
from floodlabel.core.annotation.text_step import decodes_geometry, instance_at, kept_instances, model_mask, text_base
from floodlabel.gui.window.mask_composition import resize_mask
from floodlabel.gui.workers.latest_request import LatestRequestWorker


class TextPromptJobs(QObject):
    """Instances of the current image's phrase, fetched in a worker. Signals: ready() when instances for the
    current key arrive, failed(message), running_changed(bool)."""

    ready = Signal()
    failed = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = LatestRequestWorker("floodlabel-text", passing=True)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.key: tuple | None = None  # (row, weights id, phrase, size) of `instances`
        self.instances = None  # core Instances at the view size, or None
        self.started_at = 0.0
        self._wanted: tuple | None = None  # the key being fetched
        self._request = 0

    @property
    def running(self) -> bool:
        return self._wanted is not None

    def instances_for(self, key: tuple):
        """The instances of `key` when they are here, else None."""
        return self.instances if self.key == key else None

    def ensure(self, key: tuple, session, embedding, phrase: str, size: tuple[int, int]) -> None:
        """Fetch the instances of `key` = (row, weights id, phrase, size) unless they are here or on their way."""
        if key == self.key or key == self._wanted:
            return
        self._request += 1
        self._wanted = key
        self.started_at = time.perf_counter()
        self.running_changed.emit(True)
        self.worker.submit(self._request, lambda: (key, session.segmenter.segment_text(embedding, phrase, size)))

    def cancel(self) -> None:
        """Drop the running request's result (see the module docstring)."""
        if self._wanted is not None:
            self._request += 1
            self._wanted = None
            self.running_changed.emit(False)

    def forget(self) -> None:
        """Another image or model: nothing held belongs to it."""
        self.cancel()
        self.key, self.instances = None, None

    def stop(self) -> None:
        self.worker.stop()

    def _on_done(self, request_id: int, result) -> None:
        if request_id != self._request:
            return
        self.key, self.instances = result
        self._wanted = None
        self.running_changed.emit(False)
        self.ready.emit()

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self._request:
            return
        self._wanted = None
        self.running_changed.emit(False)
        self.failed.emit(message)


def view_model_mask_with_text(annotation: Annotation, instances, model_view: np.ndarray | None,
                              view: tuple[int, int]) -> np.ndarray | None:
    """The model mask at the view size (h, w) for an annotation with a text step: the text base (None while the
    instances are not here) OR-ed with the decode `model_view` when the prompt decodes geometry (rule 2)."""
    geometry = model_view if decodes_geometry(annotation.prompt) else None
    base = None
    if instances is not None:
        base = _base(annotation, instances, view)
    return model_mask(base, geometry)


def native_model_mask_with_text(annotation: Annotation, instances, geometry_native: np.ndarray | None,
                                native_size: tuple[int, int]) -> np.ndarray | None:
    """The same at the native size (H, W): the view-size text base resized (nearest), OR the native decode."""
    geometry = geometry_native if decodes_geometry(annotation.prompt) else None
    base = None
    if instances is not None:
        base = resize_mask(_base(annotation, instances, instances.shape), native_size)
    return model_mask(base, geometry)


def instance_under(annotation: Annotation, instances, x: float, y: float) -> int | None:
    """The instance a click at (x, y) (original frame) toggles, or None."""
    if instances is None or annotation.text is None:
        return None
    return instance_at(instances.masks, instances.scores, annotation.text.threshold, x, y, annotation.original_size)


def kept_count(annotation: Annotation, instances) -> tuple[int, int, int]:
    """(kept, above the threshold, returned) instance counts for the panel."""
    if instances is None or annotation.text is None:
        return 0, 0, 0
    above = len(kept_instances(instances.scores, annotation.text.threshold))
    kept = len(kept_instances(instances.scores, annotation.text.threshold, annotation.dropped))
    return kept, above, len(instances)


def _base(annotation: Annotation, instances, size: tuple[int, int]) -> np.ndarray:
    if tuple(instances.shape) != tuple(size):
        masks = np.stack([resize_mask(m, size) for m in instances.masks]) if len(instances) else \
            np.zeros((0, *size), bool)
    else:
        masks = instances.masks
    if len(masks) == 0:
        return np.zeros(size, bool)
    return text_base(masks, instances.scores, annotation.text.threshold, annotation.dropped, annotation.prompt,
                     annotation.original_size)
