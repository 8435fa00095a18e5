"""The annotation flow behind the window, without widgets: image → embedding → prompts → decode → mask → metrics.

Follow a click: the canvas emits point_pressed → `press` requests the decode of the point (latest-request-wins
`decoder`, decode_jobs): `session.predict` at the view size and, on an image larger than the view (long side > 2048),
at the native size with the strokes applied and scored against the GT. The release's point_clicked → `add_point` (an
Annotation step) → `_on_annotation_changed` takes that decode → `_on_decoded` (UI thread) → the markers and
`mask_changed(view mask)` (the canvas, the compare controller), then, once the canvas has painted it (`panels`), the
candidates, `metrics_changed` and `clicks_changed`. Only another candidate decodes at the native size again.

Collaborators: `fixed_mask.AutoRunner` (Auto), `encoder_jobs.EncoderJobs` (`encoder`: the embedding of the image on
screen and the prefetch of the next one), `mask_composition` (the shown and saved mask from a decode),
`fixed_mask.FixedMask` (`fixed`: Auto's, a map's refined or the restored mask shown instead of the decode),
`text_prompt` (`text`: the text instances' worker, `text_steps`: the text steps), `image_loading` (`SessionOpener`,
image, restore and prefetch jobs).

Threads: images load in `loader`, embeddings run in `encoder.worker` (foreground + prefetch of the next image, paused
while the user interacts), prompts decode in `decoder`; all report back through queued signals. Nothing here waits
on the model on the UI thread. Metrics are of the native-size mask (the one saved): made in the decode worker for a
new prompt on a large image, else by `native` (`native.native_compose`: in its worker for an image larger than the
view, a stroke or a fixed mask; here for a small one)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.annotation import Annotation, Stroke, view_size
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.annotation.text_step import decodes_geometry
from floodlabel.core.data.datasets import FloodDataset
from floodlabel.core.data.image_item import ImageItem
from floodlabel.core.evaluation.live_metrics import NocTracker
from floodlabel.core.evaluation.metrics import MaskMetrics
from floodlabel.gui.canvas.after_paint import Due, HeldMarkers
from floodlabel.gui.window.decode_jobs import (Decoded, PressAhead, decode_native, decode_prompt, decode_session,
                                               decode_view, beside_children, prompt_key, warm_job,
                                               WARM_AFTER_S)
from floodlabel.gui.window.encoder_jobs import EncoderJobs
from floodlabel.gui.window.fixed_mask import AutoRunner, FixedMask
from floodlabel.gui.window.life_cycle.ui_wait import stop_and_join
from floodlabel.gui.window.image_loading import (Restore, SessionOpener, annotation_from_prompt, load_job,
                                                restored_annotation)
from floodlabel.gui.window.mask_composition import (deferred_stroke_layer, stroke_snapshot, view_model_mask,
                                                    with_strokes)
from floodlabel.gui.window.native.native_compose import DECODE, READY, NativeCompose
from floodlabel.gui.window.text_prompt.text_prompt_jobs import TextPromptJobs
from floodlabel.gui.window.text_prompt.text_prompt_steps import TextPromptSteps
from floodlabel.gui.window.maps.tiled_refine import RefineRequest, TiledRefiner
from floodlabel.gui.workers.latest_request import LatestRequestWorker

MARKERS_LATEST_MS = 50
"""A new prompt's markers are drawn with its mask, or this long after the click at the latest (a slow decoder)."""
AUTO_POINTS_PER_SIDE = 8
"""Auto's point grid (8 x 8 = 64 prompts; SAM's default 32 x 32 takes minutes per image on a 2-core CPU)."""


class SegmentationController(QObject):
    """Owns the current image, its Annotation, the session and the workers. The window renders what it emits."""

    session_ready = Signal(str)  # model id
    session_failed = Signal(str)
    image_loaded = Signal(object)  # ImageItem
    image_failed = Signal(int, str)  # dataset row, one-line reason
    embedding_started = Signal()
    embedding_ready = Signal(float)  # seconds (0 for a cache hit)
    embedding_stopped = Signal(str)  # "cancelled" or the failure message
    markers_changed = Signal(object, object, object, bool)  # points (N, 2), labels (N,), box (4,) | None, pending
    mask_changed = Signal(object)  # (h, w) bool mask at the view size, or None
    candidates_changed = Signal(object, object, int)  # thumbnails, scores, chosen index
    metrics_changed = Signal(object, bool)  # MaskMetrics | None, has_gt
    area_changed = Signal(object)  # core.geo.area.Area of the native mask (m² / ha or pixels), None without one
    clicks_changed = Signal(int, object, object)  # clicks, click at IoU >= .85 (or None), at >= .90 (or None)
    history_changed = Signal(bool, bool)  # can undo, can redo
    message = Signal(str)  # an error to show in the window
    scored = Signal(int, float)  # dataset row, the model's predicted IoU of the shown candidate (its confidence)
    text_state = Signal(object)  # None (no text step) or (phrase, threshold, kept, above threshold, found | None)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = None
        self.dataset: FloodDataset | None = None
        self.row = -1
        self.item: ImageItem | None = None
        self.embedding = None
        self.annotation: Annotation | None = None
        self.noc = NocTracker()
        self.hover_enabled = True
        self.shown: Decoded | None = None  # the prediction behind the shown mask
        self.native_mask: np.ndarray | None = None  # the mask that would be saved, (H, W) bool
        self.metrics: MaskMetrics | None = None
        self.restore_fn: Restore | None = None
        self.restore_problem: str | None = None
        self.pending_prompt: Prompt | None = None  # applied as steps when the next image loads (compare on dataset)
        self.next_row: Callable[[int], int | None] = lambda row: row + 1  # the image to pre-encode after `row`

        self.loader = LatestRequestWorker("floodlabel-loader")
        self.loader.done.connect(self._on_loaded)
        self.loader.failed.connect(self._on_load_failed)
        self.decoder = LatestRequestWorker("floodlabel-decoder")
        self.decoder.done.connect(self._on_decoded)
        self.decoder.failed.connect(self._on_decode_failed)
        self.encoder = EncoderJobs(lambda: (self.session, self.item), self)
        self.encoder.started.connect(self.embedding_started)
        self.encoder.ready.connect(self._use_embedding)
        self.encoder.stopped.connect(self.embedding_stopped)
        self.encoder.failed.connect(lambda message: self.message.emit(f"Encoding failed: {message}"))
        self.encoder.background_stopped.connect(
            lambda why: self.message.emit(f"Pre-encoding of the next images stopped: {why}. It starts again with the "
                                          "next image; nothing you accepted is affected."))
        self.opener = SessionOpener(self, self.set_session, self.session_failed)
        self.auto = AutoRunner(self)
        self.refiner = TiledRefiner(self)  # a map's full-resolution tiled decode after each new prompt
        self.fixed = FixedMask(self, self._show_mask)  # Auto's, a map's refine or the restored accepted mask
        self.text = TextPromptJobs(self)  # the text prompt's instances (`text_prompt_jobs`)
        self.text_steps = TextPromptSteps(self, self.text, self._show_mask, self._interacting)  # run, threshold, pick
        self.text.failed.connect(lambda message: self.message.emit(f"Text prompt failed: {message}"))
        self.native = NativeCompose(self, self._native_in, self.area_changed.emit)  # the mask an Accept saves
        self._native_pending = False
        self.pressed = PressAhead()  # a press's decode waiting for its click
        self._decoded_at = 0.0  # time.monotonic() of the last decode result (or warm-up request)
        self.panels = Due()  # a decode's candidates and metrics, put off until the canvas painted its mask
        self.markers = HeldMarkers(self.markers_changed.emit, MARKERS_LATEST_MS, self)  # drawn with the mask
        self._request = 0

    # ------------------------------------------------------------------------------------------------ session

    def open_session(self, model: str) -> None:
        """Load `model` ('classic', a registered name or a .pth path) in the background once the window is on the
        screen (`image_loading.SessionOpener`); prompts are kept. `session_ready` or `session_failed` follows."""
        self.opener.open(model)

    def set_session(self, session) -> None:
        """Use an already opened SegmentationSession (tests, benchmarks); re-embeds the current image."""
        self.session = session
        self.embedding = None
        self.shown = None  # the old model's prediction: the prompts are decoded again with the new one
        self.text.forget()
        self.encoder.reset()
        self.session_ready.emit(session.model_id)
        if self.item is not None:
            self._request_embedding()

    # ------------------------------------------------------------------------------------------------ images

    def set_dataset(self, dataset: FloodDataset) -> None:
        self.dataset = dataset
        self.row = -1
        self.encoder.reset(images=True)

    def select(self, row: int) -> None:
        """Show dataset row `row`: the image loads in the background, then its embedding (cache first)."""
        if self.dataset is None or not 0 <= row < len(self.dataset.pairs):
            return
        self.row = row
        self.item = None
        self.embedding = None
        self.pressed.press = None
        self.panels.drop()
        self.shown = None
        self.native_mask = None
        self.metrics = None
        self.fixed.drop()
        self.annotation = None
        self._native_pending = False
        self.native.drop()
        self.text.forget()
        self.encoder.cancel()
        self.refiner.cancel()
        pair = self.dataset.pairs[row]
        self._request += 1
        self.loader.submit(self._request, load_job(row, pair, self.encoder.take_item(row), self.restore_fn))

    # ------------------------------------------------------------------------------------------------ steps

    def press(self, x: float, y: float, positive: bool) -> None:
        """A button went down at (x, y) (original frame): decode the point a click there adds, so that its mask is in
        when the button comes up (a hand's click lasts ~0.1 s) and `add_point` takes it; else `press_dropped`."""
        ann = self.annotation
        if ann is None or self.embedding is None or not self.fast_decoder or ann.prompt.text is not None:
            return
        self._interacting()
        prompt = ann.prompt.with_point(float(x), float(y), bool(positive))
        self._decode("prompt", prompt, next_step=True)
        self.pressed.start(self.prompt_key(prompt), self._request)

    def press_dropped(self) -> None:
        """The press became a drag, or its click went elsewhere: what its decode displaced is requested again."""
        if self.pressed.drop(self._request) and self.annotation is not None:
            self._request += 1
            self._on_annotation_changed(self.annotation)

    def add_point(self, x: float, y: float, positive: bool) -> None:
        if self.annotation is not None:
            self._interacting()
            self.annotation.add_point(x, y, positive)

    def set_box(self, box: tuple[float, float, float, float] | None) -> None:
        if self.annotation is not None:
            self.annotation.set_box(box)

    def preview_box(self, box: tuple[float, float, float, float]) -> None:
        """A box being dragged: decode it (with the current points) without making it a step."""
        if self.annotation is not None and self.embedding is not None:
            self._interacting()
            self._decode("box", self.annotation.prompt_with_box(box))

    def hover(self, x: float, y: float) -> None:
        """Hover preview: before the first prompt, show the mask a click here would give; after it, keep the decoder
        warm while the pointer moves (`decode_jobs.warm_job`)."""
        ann, emb = self.annotation, self.embedding
        if not (self.fast_decoder and ann is not None and emb is not None):
            return
        if self.hover_enabled and ann.prompt.is_empty and not ann.strokes:
            self._interacting()
            self._decode("hover", Prompt.point(x, y))
        elif self.decoder.idle and time.monotonic() - self._decoded_at > WARM_AFTER_S and ann.prompt.text is None:
            self._decoded_at = time.monotonic()  # request -2: its result is not shown, and it displaces no request
            job = warm_job(decode_session(self.session, self.item), emb, ann.prompt.with_point(x, y), self.item)
            self.decoder.submit(-2, beside_children(job, self.encoder))

    @property
    def fast_decoder(self) -> bool:
        """SAM decodes in milliseconds; the classic backend runs GrabCut per prompt (too slow to follow the mouse)."""
        return self.session is not None and self.session.segmenter.capabilities.fast_decode

    def hover_left(self) -> None:
        if self.shown is not None and self.shown.kind == "hover":
            self._request += 1  # drop an in-flight hover result
            self.shown = None
            self._show_mask()

    def choose_candidate(self, i: int) -> None:
        if self.annotation is not None and self.shown is not None and 0 <= i < len(self.shown.prediction):
            self.fixed.drop_refined()  # a map's refined mask is the tiles' best: picking a candidate shows that one
            self.annotation.choose_candidate(i)

    def add_stroke(self, stroke: Stroke) -> None:
        if self.annotation is not None:
            self._interacting()
            self.annotation.add_stroke(stroke)

    def undo(self) -> None:
        if self.annotation is not None:
            self.annotation.undo()

    def redo(self) -> None:
        if self.annotation is not None:
            self.annotation.redo()

    def drop_prompts(self) -> None:
        if self.annotation is not None:
            self.annotation.drop_prompts()

    def clear(self) -> None:
        if self.annotation is not None:
            self.annotation.clear()

    def cancel_embedding(self) -> None:
        self.encoder.cancel()

    def prefetch_next(self) -> None:
        """Pre-encode the image after this one (`next_row`; cache only) while the user works on this one."""
        self.encoder.prefetch(self.dataset, self.session, self.next_row(self.row))

    def run_auto(self) -> None:
        """Automatic mask generation in a worker (progress in `auto_progress`, `cancel_auto()` stops it); its water
        mask (every AMG segment containing a positive point) is shown until the prompt changes (`fixed_mask`)."""
        self.fixed.run_auto(AUTO_POINTS_PER_SIDE)

    auto_running = property(lambda self: self.auto.running)
    auto_progress = property(lambda self: self.auto.progress, doc="The running (or last) Auto's progress, 0..1.")

    def cancel_auto(self) -> None:
        self.auto.cancel()

    def pending_refine(self) -> RefineRequest | None:
        """What an accept now still needs on a map: the saved mask would be the view-level decode of the prompt
        and its full-resolution refine has not come in. None when not a map, without a prompt, when a candidate was
        picked (the refine is each tile's best), or when Auto's, the restored or the refined mask is shown."""
        return self.fixed.pending_refine()

    def native_ready(self) -> bool:
        """Whether `native_mask` matches what is on screen (False while the full-size mask is being decoded)."""
        return not self._native_pending and not self.panels.pending

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every worker and wait (up to `timeout` s in all) until none runs model code: torch work still
        running in a daemon thread when the interpreter exits can abort the process."""
        self.opener.close()
        self.encoder.close()
        self.cancel_auto()
        self.refiner.cancel(kept=True)  # an accept waiting for one keeps its view-level mask (tiled_refine)
        workers = (self.encoder.worker, self.loader, self.decoder, self.text.worker, self.native.worker)
        stop_and_join(workers, (*workers, self.auto, self.refiner, self.opener.call), timeout)

    def _on_loaded(self, request_id: int, result: tuple[int, ImageItem, tuple]) -> None:
        row, item, (state, mask, problem) = result
        if row != self.row:
            return
        self.item = item
        self.annotation = restored_annotation(state, item.original_size)
        self.restore_problem = problem
        if mask is not None and mask.shape == item.original_size:
            self.fixed.restore(mask, (row, self.prompt_key(self.annotation.prompt)))
            self.annotation.mark_saved_mask()
        if self.pending_prompt is not None:
            prompt, self.pending_prompt = self.pending_prompt, None
            self.annotation = annotation_from_prompt(prompt, item.original_size)
            self.fixed.mask = None
        self.annotation.add_listener(self._on_annotation_changed)
        self.noc.reset()
        self.image_loaded.emit(item)
        self._emit_state()
        if self.session is not None:
            self._request_embedding()

    def _on_load_failed(self, request_id: int, message: str) -> None:
        if request_id == self._request:
            self.image_failed.emit(self.row, message)

    def _request_embedding(self) -> None:
        assert self.item is not None and self.session is not None
        self.encoder.embed(self.session, self.item)  # -> _use_embedding (at once on a cache hit)

    def _use_embedding(self, embedding, seconds: float) -> None:
        self.embedding = embedding
        self.embedding_ready.emit(seconds)
        self._on_annotation_changed(self.annotation)  # clicks made while encoding apply now
        self.encoder.pause()  # the first clicks on this image come before the prefetch
        self.prefetch_next()

    def _on_annotation_changed(self, annotation: Annotation | None) -> None:
        if annotation is None or annotation is not self.annotation:
            return
        prompt = annotation.prompt
        if prompt.text is not None and self.embedding is not None:
            self.text_steps.ensure()
            if annotation.has_model_mask and not decodes_geometry(prompt):  # the text base alone (text_step rule 2)
                self.shown = None
                self._emit_state()
                self._show_mask()
                return
        key = self.prompt_key(prompt)
        if (self.embedding is not None and not prompt.is_empty and annotation.has_model_mask
                and not (self.shown is not None and self.shown.kind in ("prompt", "native")
                         and self.shown.prompt_key == key)):
            taken = self.pressed.take(key, self._request)
            if taken is None:
                self._decode("prompt", prompt)
            self._emit_state(with_mask=not taken)  # the markers are drawn with the mask
            for result in taken or ():  # the press's parts that came before its click
                self._on_decoded(self._request, result)
            return
        self._emit_state()
        if prompt.is_empty or not annotation.has_model_mask:
            self.shown = None
        self._show_mask()  # no embedding yet, no prompt, or the same prompt: candidate or strokes changed

    def _decode(self, kind: str, prompt: Prompt, next_step: bool = False) -> None:
        """Request the decode of `prompt`; `next_step`: the prompt of the annotation's next step (a press before
        its click: the model's best candidate, the next version)."""
        session, emb, item = decode_session(self.session, self.item), self.embedding, self.item
        candidate = self.annotation.candidate if self.annotation is not None and not next_step else None
        size = view_size(item.original_size)
        key = self.prompt_key(prompt)
        self._request += 1
        if kind != "prompt" or size == item.original_size:
            self._submit_decode(lambda: decode_view(session, emb, kind, key, prompt, candidate, size))
            return
        # one request in two parts: the view mask (painted at once), then the native one (strokes, metrics)
        self._native_pending = True
        ann, gt = self.annotation, item.gt
        layer, version = stroke_snapshot(ann, item.original_size), ann.version + int(next_step)
        self._submit_decode(lambda: decode_prompt(session, emb, key, prompt, candidate, size, layer, gt, version))

    def _submit_decode(self, fn) -> None:
        """Queue decode `fn` as request `_request`, beside the background children (`decode_jobs.beside_children`)."""
        self.decoder.submit(self._request, beside_children(fn, self.encoder))

    def _on_decoded(self, request_id: int, result: Decoded) -> None:
        if request_id != self._request or self.annotation is None:
            return  # a newer request (or another image) came meanwhile
        self._decoded_at = time.monotonic()
        if self.pressed.hold(request_id, result):
            return  # a press's decode, before its click
        if result.kind == "hover" and not self.annotation.prompt.is_empty:
            return
        before, self.shown = self.shown, result
        if (result.new_prompt and before is not None and before.partial and before.prompt_key == result.prompt_key
                and before.candidate == result.candidate):
            self.panels.run()  # the view part's, if its paint has not come yet
            self._update_native(self._model_view())  # its view part is on screen: the native mask completes it
        else:
            self._show_mask(later=True)
        if (result.kind == "prompt" and not result.partial) or result.new_prompt:
            row, score = self.row, float(result.prediction.scores[self._chosen(result)])
            self.panels.after(lambda: self.scored.emit(row, score))
            if self.refiner.wanted(self.item):  # a map: the tiled decode follows at full resolution
                self.refiner.start(self.session, self.item, self.annotation.prompt, (self.row, result.prompt_key))

    def _request_native(self, shown: Decoded) -> None:
        """Another candidate of `shown` picked: that one at the image's own size, for metrics and saving (decoded
        again, off the UI thread)."""
        session, emb, ann, gt = decode_session(self.session, self.item), self.embedding, self.annotation, self.item.gt
        prompt, candidate, version = ann.prompt, self._chosen(shown), ann.version
        layer = deferred_stroke_layer(ann, self.item.original_size)  # drawn in the worker
        self._request += 1
        self._submit_decode(lambda: decode_native(session, emb, shown, prompt, candidate, layer(), gt, version))

    def _on_decode_failed(self, request_id: int, message: str) -> None:
        if request_id == self._request:
            self.message.emit(f"Decoding failed: {message}")

    # ------------------------------------------------------------------------------------------------ rendering

    def _show_mask(self, later: bool = False) -> None:
        """Emit the view mask, then the candidates and metrics (`later`: once the canvas painted it, `panels`)."""
        ann, item, shown = self.annotation, self.item, self.shown
        if ann is None or item is None:
            return
        self.panels.drop()  # this call makes them again
        self.markers.release()  # the markers of the prompt being decoded, if they wait for it
        if shown is not None and shown.kind == "hover":
            self.mask_changed.emit(shown.prediction.mask(shown.prediction.best))
            panels = lambda: self._emit_candidates(shown)  # noqa: E731
        else:
            model_view = self._model_view()
            self.mask_changed.emit(with_strokes(ann, model_view, view_size(item.original_size)))
            panels = lambda: (self._emit_candidates(shown), self._update_native(model_view))  # noqa: E731
        self.panels.put(panels) if later else panels()

    def _model_view(self) -> np.ndarray | None:
        """The model's mask at the view size (strokes not applied): the fixed one, else the shown candidate, with the
        text prompt's instances."""
        shown, view = self.shown, view_size(self.item.original_size)
        chosen = self._chosen(shown) if shown is not None else -1
        return self.text_steps.view_mask(view_model_mask(self.shown_fixed_mask(), shown, chosen, view), view)

    def _emit_candidates(self, shown: Decoded | None) -> None:
        none = shown is None
        scores = [] if none else [float(s) for s in shown.prediction.scores]
        self.candidates_changed.emit([] if none else shown.thumbs, scores, -1 if none else self._chosen(shown))

    def _update_native(self, model_view: np.ndarray | None) -> None:
        """The saved mask, its metrics and area by `native` (`native.native_compose`): here, in its worker
        (`_native_in` takes it; `native_ready()` is False meanwhile) or after the decode worker's native part."""
        shown = self.shown
        state = self.native.update(shown, self._chosen(shown) if shown is not None else -1, model_view)
        if state == DECODE and shown.kind == "native":  # another candidate was picked: decode it at the native size
            self._request_native(shown)
        self._native_pending = state != READY

    def _native_in(self, mask: np.ndarray | None, metrics: MaskMetrics | None) -> None:
        """The native mask and its metrics are in (`native`): what an Accept saves now."""
        ann, item = self.annotation, self.item
        self._native_pending = False
        self.native_mask, self.metrics = mask, metrics
        if metrics is not None:
            self.noc.update(ann.click_count, metrics.iou)
        self.metrics_changed.emit(metrics, item.gt is not None)
        self.clicks_changed.emit(ann.click_count, self.noc.noc85, self.noc.noc90)

    def _emit_state(self, with_mask: bool = False) -> None:
        """Markers, undo / redo (the autosave follows it), click count. `with_mask` (a decode was just requested): the
        markers come with its mask, the count after its paint, so that no paint runs beside the decode."""
        ann = self.annotation
        if ann is None:
            return
        p = ann.prompt
        self.markers.put((p.points, p.labels, p.box, self.embedding is None), hold=with_mask)
        self.history_changed.emit(ann.can_undo, ann.can_redo)

        def panels() -> None:
            self.clicks_changed.emit(ann.click_count, self.noc.noc85, self.noc.noc90)
            self.text_steps.emit_state()

        self.panels.after(panels) if with_mask else panels()

    # ------------------------------------------------------------------------------------------------ helpers

    def _chosen(self, shown: Decoded) -> int:
        c = self.annotation.candidate if self.annotation is not None else None
        return c if c is not None and c < len(shown.prediction) else shown.prediction.best

    def _interacting(self) -> None:
        self.encoder.pause()

    @property
    def fixed_mask(self) -> np.ndarray | None:
        """Auto's, a map's refined or the restored accepted mask (`fixed_mask.FixedMask`), (H, W) bool, or None."""
        return self.fixed.mask

    def shown_fixed_mask(self) -> np.ndarray | None:
        """`fixed_mask` when it is the model mask now (its prompt holds; the restored one while in use), else None."""
        return self.fixed.shown()

    prompt_key = staticmethod(prompt_key)
