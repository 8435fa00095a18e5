"""The segmentation controller's native mask (the one an Accept saves) made off the UI thread: `NativeCompose`.

When the decode worker did not compose it for this version of the annotation (a stroke, a fixed mask: Auto's, a
map's refine or a restored accept; the text prompt's instances), the mask at the native size with the strokes, its
metrics and its area were made on the UI thread: 94 ms per stroke end on a 4000x3000 photo, 0.4-0.7 s on a
20,000^2 map (`benchmarks/bench_ui_compose.py`).

Rules:
- An image no larger than the view (native size == view size, a few MP) is composed on the UI thread at once: a
  worker trip costs more than the compose.
- Larger: `update` takes on the UI thread only what the mask is made of (the model mask at the native size,
  `mask_composition.native_model_mask`; a copy of the annotation for its strokes and text step; the text
  instances; the GT) and one latest-request-wins worker composes, scores and measures it (`compose_native`). The
  view mask stays on screen meanwhile and the controller's `native_ready()` is False: an Accept waits for it.
- A result is used only when it is the newest request's and what it was made from still holds: the same annotation
  at the same version, the same decode and fixed mask shown, the same text instances, and no decode submitted since
  (the controller's request counter; with an empty prompt only a preview can be, which does not change the mask).
  Else it is dropped: a newer request, or the decode on its way, makes the native mask.
- When the decode worker made the mask and metrics for this version (`Decoded.composed`) they are used at once;
  only the area is measured in the worker.
- An Accept still waiting for a compose when the user leaves the image runs that compose job itself (`job_for`,
  `life_cycle.late_accepts`): what is saved is the mask of the version accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject

from floodlabel.core.annotation.annotation import Annotation, apply_stroke_layer, view_size
from floodlabel.core.evaluation.metrics import MaskMetrics, mask_metrics
from floodlabel.core.geo.area import Area, mask_area
from floodlabel.gui.window.decode_jobs import Decoded
from floodlabel.gui.window.mask_composition import native_model_mask, saved_mask
from floodlabel.gui.window.text_prompt.text_prompt_jobs import native_model_mask_with_text
from floodlabel.gui.workers.latest_request import LatestRequestWorker

READY, COMPOSING, DECODE = "ready", "composing", "decode"
"""What `NativeCompose.update` did: the native mask is in (`done` was called), the worker composes it, or the model
mask at the native size has to come from the decode worker first."""


@dataclass(frozen=True)
class NativeMask:
    """mask: (H, W) bool at the native size, None without a model mask and strokes; metrics against the GT (None
    without one); area: `core.geo.area.Area` of the mask, None without a mask."""

    mask: np.ndarray | None
    metrics: MaskMetrics | None
    area: Area | None


class NativeCompose(QObject):
    """The native mask of `controller` (a SegmentationController: annotation, item, shown decode, `text_steps`,
    `shown_fixed_mask()`, `message` and its decode request counter `_request`), made by the rules above.

    done(mask, metrics): the native mask and its metrics are in; area(Area | None): its area is (both on the UI
    thread, after `update` or when the worker's result lands)."""

    def __init__(self, controller, done: Callable[[np.ndarray | None, MaskMetrics | None], None],
                 area: Callable[[Area | None], None]) -> None:
        super().__init__(controller)
        self._c = controller
        self._done = done
        self._area = area
        self.worker = LatestRequestWorker("floodlabel-native-compose", passing=True)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self._request = 0
        self._inflight: _Inflight | None = None

    @property
    def composing(self) -> bool:
        """A compose of the native mask runs (or waits) in the worker and its result is still wanted."""
        return self._inflight is not None and not self._inflight.area_only

    def update(self, shown: Decoded | None, chosen: int, model_view: np.ndarray | None) -> str:
        """Make the native mask for the controller's state now: `shown` the decode on screen (None: none), `chosen`
        its candidate, `model_view` the model mask at the view size. READY, COMPOSING or DECODE (see above); any
        compose still in flight is dropped."""
        c = self._c
        ann, item = c.annotation, c.item
        size = tuple(item.original_size)
        self.drop()
        if view_size(size) == size:  # no larger than the view: here and now
            ready, texted, model_native = c.text_steps.native_mask(shown, chosen, model_view, size)
            if not ready:
                return DECODE
            mask, metrics = saved_mask(ann, item.gt, size, c.shown_fixed_mask(), None if texted else shown,
                                       model_native)
            self._area(_area(mask, item.geo))  # first: an Accept waiting for `done` may move to the next image
            self._done(mask, metrics)
            return READY
        fixed = c.shown_fixed_mask()
        texted = ann.text is not None and fixed is None
        if (not texted and fixed is None and shown is not None and shown.kind == "native"
                and shown.version == ann.version and shown.composed is not None):
            self._done(shown.composed, shown.metrics)  # made in the decode worker
            self._submit(lambda: NativeMask(shown.composed, shown.metrics, _area(shown.composed, item.geo)), True)
            return READY
        decoded_view = shown.prediction.mask(chosen) if texted and shown is not None else model_view
        ready, model_native = native_model_mask(fixed, shown, chosen, decoded_view, size)
        if not ready:
            return DECODE
        state, saved = ann.to_dict(), ann.uses_saved_mask  # the strokes and text step of this version
        instances = c.text_steps.instances() if texted else None
        gt, geo = item.gt, item.geo
        self._submit(lambda: compose_native(_copy(state, saved), model_native, texted, instances, size, gt, geo),
                     False)  # each run on its own copy: a late accept may run the same job beside the worker
        return COMPOSING

    def drop(self) -> None:
        """Whatever is in flight is no longer wanted (another state, another image)."""
        self._request += 1
        self._inflight = None

    def job_for(self, annotation: Annotation) -> Callable[[], NativeMask] | None:
        """The compose job in flight for `annotation` at its current version (an Accept that waits for it and
        outlives the image runs it itself), else None."""
        f = self._inflight
        if f is None or f.area_only or f.state[0] is not annotation or f.state[1] != annotation.version:
            return None
        return f.job

    # ------------------------------------------------------------------------------------------------ helpers

    def _submit(self, job: Callable[[], NativeMask], area_only: bool) -> None:
        self._inflight = _Inflight(self._request, self._state(), job, area_only)
        self.worker.submit(self._request, job)

    def _state(self) -> tuple:
        """What a result is made from (compared by identity when it lands)."""
        c = self._c
        ann = c.annotation
        instances = c.text_steps.instances() if ann is not None and ann.text is not None else None
        return ann, ann.version if ann is not None else -1, c.shown, c.shown_fixed_mask(), instances, c._request

    def _still_holds(self, state: tuple) -> bool:
        (ann, version, shown, fixed, instances, request), now = state, self._state()
        same = (ann is now[0] and version == now[1] and shown is now[2] and fixed is now[3] and instances is now[4])
        preview_only = ann is not None and ann.prompt.is_empty  # hover / box previews do not change the mask
        return same and (request == now[5] or preview_only)

    def _on_done(self, request_id: int, result: NativeMask) -> None:
        f = self._inflight
        if f is None or request_id != f.request:
            return  # a newer request came
        self._inflight = None
        if not self._still_holds(f.state):
            return  # the state moved on without a new request: the decode on its way makes the native mask
        self._area(result.area)
        if not f.area_only:
            self._done(result.mask, result.metrics)

    def _on_failed(self, request_id: int, message: str) -> None:
        f = self._inflight
        if f is not None and request_id == f.request:
            self._inflight = None
            self._c.message.emit(f"The full-size mask could not be made: {message}")


def compose_native(annotation: Annotation, model_native: np.ndarray | None, texted: bool, instances: Any,
                   size: tuple[int, int], gt: np.ndarray | None, geo) -> NativeMask:
    """The native mask (H, W) = `size` of `annotation` (a copy of one version: its strokes, text step and whether it
    uses the saved mask) on the model mask `model_native` ((H, W) bool or None; with `texted` the text base of
    `instances` is OR-ed in first), scored against `gt` and measured under `geo` (a worker job: no Qt)."""
    if texted:
        model_native = native_model_mask_with_text(annotation, instances, model_native, size)
    mask = None
    if model_native is not None or annotation.strokes:  # as `with_strokes`: the strokes over the model mask
        use_model = model_native is not None and annotation.has_model_mask
        mask = model_native.astype(bool, copy=True) if use_model else np.zeros(size, bool)
        if annotation.strokes:
            layer = annotation.stroke_layer(size)  # untouched outside the strokes' boxes: applied inside them only
            for rows, cols in _stroke_boxes(annotation.strokes, size):
                apply_stroke_layer(mask[rows, cols], layer[rows, cols])
    metrics = mask_metrics(mask, gt) if gt is not None and mask is not None else None
    return NativeMask(mask, metrics, _area(mask, geo))


@dataclass(frozen=True)
class _Inflight:
    request: int
    state: tuple
    job: Callable[[], NativeMask]
    area_only: bool


def _copy(state: dict, saved: bool) -> Annotation:
    """An annotation of one version from its `to_dict` state (`saved`: it uses the restored accepted mask)."""
    copy = Annotation.from_dict(state)
    if saved:
        copy.mark_saved_mask()
    return copy


def _stroke_boxes(strokes, size: tuple[int, int]) -> list[tuple[slice, slice]]:
    """(rows, cols) slices of `size` (H, W) holding each stroke's pixels at the native size (its points' box grown by
    its radius and 2 px for the rasteriser's rounding)."""
    H, W = size
    boxes = []
    for stroke in strokes:
        r = max(1.0, float(stroke.radius)) + 2.0
        (x0, y0), (x1, y1) = stroke.points.min(axis=0) - r, stroke.points.max(axis=0) + r
        rows = slice(max(0, int(np.floor(y0))), min(H, int(np.ceil(y1)) + 1))
        cols = slice(max(0, int(np.floor(x0))), min(W, int(np.ceil(x1)) + 1))
        if rows.start < rows.stop and cols.start < cols.stop:
            boxes.append((rows, cols))
    return boxes


def _area(mask: np.ndarray | None, geo) -> Area | None:
    return None if mask is None else mask_area(mask, geo)
