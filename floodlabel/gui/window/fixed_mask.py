"""The segmentation controller's fixed mask: a model mask not made by the decoder, shown instead of the decode; and
Auto (`AutoRunner`), the background run that makes one.

Three make one, each (H, W) bool at the image's native size and kept with the key it was made for, (row, prompt
key): Auto's proposal (every AMG segment containing a positive point, `core.models.auto_water`, run on a map's view
image and upscaled), a large map's full-resolution tiled refine (`maps.tiled_refine`, pasted over the view-level
decode inside the tiles it decoded, in a worker) and the accepted mask restored from the project store. It is the model mask
while its key holds; the restored one only while the annotation's state uses it (`Annotation.uses_saved_mask`:
strokes keep it, a new prompt or Clear drops it, undo brings it back). The annotation's strokes still go on top
(`mask_composition`).
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.tiles.map_item import MapItem
from floodlabel.core.tiles.tiled import merge_levels
from floodlabel.core.tiles.view_frame import scale_prompt, upscale_mask
from floodlabel.gui.window.mask_composition import stroke_snapshot
from floodlabel.gui.window.maps.tiled_refine import RefineRequest
from floodlabel.gui.workers.background import BackgroundCall


class FixedMask(QObject):
    """The fixed mask of `controller` (a SegmentationController: its row, item, session, embedding, annotation,
    shown decode, `auto`, `refiner`, `message` and `prompt_key`). show_mask: re-render the controller's state."""

    def __init__(self, controller, show_mask: Callable[[], None]) -> None:
        super().__init__(controller)
        self.mask: np.ndarray | None = None
        self.key: tuple | None = None  # (row, prompt key) `mask` belongs to
        self.saved = False  # `mask` is the restored accepted mask (shown while the state uses it)
        self.refined = False  # `mask` is a map's tiled refine
        self._merge: BackgroundCall | None = None  # a refine meeting the view-level mask in a worker (`_on_refined`)
        self._c = controller
        self._show_mask = show_mask
        controller.auto.done.connect(self._on_auto)
        controller.auto.failed.connect(self._on_auto_failed)
        controller.refiner.done.connect(self._on_refined)

    def shown(self) -> np.ndarray | None:
        """`mask` when it is the model mask now, else None (see the module docstring)."""
        ann = self._c.annotation
        if self.mask is None or ann is None or self.key != (self._c.row, self._c.prompt_key(ann.prompt)):
            return None
        if self.saved and not ann.uses_saved_mask:
            return None
        return self.mask

    def drop(self) -> None:
        """Another image: nothing held belongs to it."""
        self.mask, self.refined, self._merge = None, False, None

    def drop_refined(self) -> None:
        """A candidate picked: a map's refined mask (the tiles' best) gives way to that candidate."""
        self._merge = None
        if self.refined:
            self.mask, self.refined = None, False

    def restore(self, mask: np.ndarray, key: tuple) -> None:
        """The accepted mask restored from the project store for `key` (the image just loaded and its prompt)."""
        self.mask, self.key, self.saved = mask, key, True

    def run_auto(self, points_per_side: int) -> None:
        """Automatic mask generation on the current image and prompt in the controller's `auto` worker."""
        c = self._c
        if c.item is None or c.session is None or c.annotation is None or c.auto.running:
            return
        prompt = c.annotation.prompt
        self.key = (c.row, c.prompt_key(prompt))
        item = c.item  # a map's Auto runs on its view image: its points go to the view frame (the worker upscales)
        view_prompt = scale_prompt(prompt, item.view_scale) if isinstance(item, MapItem) else prompt
        c.auto.start(c.session, item.image, c.embedding, view_prompt, self.key, points_per_side, item.original_size)

    def pending_refine(self) -> RefineRequest | None:
        """What an accept now still needs on a map: the saved mask would be the view-level decode of the prompt
        and its full-resolution refine has not come in. None when not a map, without a prompt, when a candidate was
        picked (the refine is each tile's best), or when Auto's, the restored or the refined mask is shown."""
        c = self._c
        ann, item, shown = c.annotation, c.item, c.shown
        if ann is None or shown is None or not c.refiner.wanted(item) or ann.candidate is not None:
            return None
        key = c.prompt_key(ann.prompt)
        if (not ann.prompt.has_geometry or shown.kind not in ("prompt", "native") or shown.prompt_key != key
                or shown.native_mask is None or self.shown() is not None):
            return None
        layer = stroke_snapshot(ann, item.original_size)
        return RefineRequest((c.row, key), ann.prompt, shown.native_mask, layer, item.gt)

    def _on_auto_failed(self, message: str) -> None:
        if "cancelled" not in message.lower():
            self._c.message.emit(f"Auto: {message}")

    def _on_refined(self, key: tuple, mask: np.ndarray, owned: np.ndarray) -> None:
        """A map's full-resolution tiled mask for (row, prompt key), pasted over the view-level mask inside the
        decoded tiles' cores (`owned`; in a worker: 0.3 s at 20,000^2): shown as Auto's is, while that prompt holds
        and no candidate was picked meanwhile."""
        c = self._c
        if c.annotation is None or (c.row, c.prompt_key(c.annotation.prompt)) != key:
            return
        coarse = c.shown.native_mask if c.shown is not None and c.shown.prompt_key == key[1] else None
        self._merge = None
        if coarse is None or coarse.shape != mask.shape or owned.all():
            self._show_refined(key, mask)
            return
        call = BackgroundCall(lambda: (key, merge_levels(mask, owned, coarse)))  # in place: the refine's own array
        call.succeeded.connect(self._on_merged)
        call.failed.connect(self._on_merge_failed)
        self._merge = call
        call.start()

    def _on_merged(self, result: tuple[tuple, np.ndarray]) -> None:
        if self._merge is None or self.sender() is not self._merge.relay:
            return  # a candidate was picked, or another image or refine came, meanwhile
        self._merge = None
        self._show_refined(*result)

    def _on_merge_failed(self, message: str) -> None:
        if self._merge is not None and self.sender() is self._merge.relay:
            self._merge = None
            self._c.message.emit(f"Full-resolution refine: {message}")

    def _show_refined(self, key: tuple, mask: np.ndarray) -> None:
        c = self._c
        if c.annotation is None or (c.row, c.prompt_key(c.annotation.prompt)) != key:
            return
        self.key = key
        self._on_auto(key, mask)
        self.refined = True

    def _on_auto(self, key: tuple, mask: np.ndarray) -> None:
        c = self._c
        if (c.row, c.prompt_key(c.annotation.prompt if c.annotation else Prompt())) != key:
            return
        self.mask = upscale_mask(mask, c.item.original_size)  # at that size already (AutoRunner): no copy
        self.saved = self.refined = False
        self._show_mask()


class AutoRunner(QObject):
    """One Auto run at a time. Signals: done(key, mask (H, W) bool at the image's native size: a map's view-level
    mask is upscaled in the worker, 0.4 GB at 20,000^2), failed(message).

    Attributes: progress (0..1, written by the worker, read by the window's timer), running (property).
    """

    done = Signal(object, object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.progress = 0.0
        self._call: BackgroundCall | None = None
        self._cancel: threading.Event | None = None

    @property
    def running(self) -> bool:
        return self._call is not None and self._call.is_running()

    def start(self, session, image: np.ndarray, embedding, prompt: Prompt, key: tuple, points_per_side: int,
              size: tuple[int, int] | None = None) -> None:
        """Run `auto_water_mask` on image (h, w, 3) uint8 with its embedding and prompt (in the image's frame); `key`
        comes back with the mask, upscaled to `size` (H, W) when given (a map's full size)."""
        from floodlabel.core.common.cancel import Cancelled
        from floodlabel.core.models.auto_water import auto_water_mask

        cancel = threading.Event()
        self.progress = 0.0

        def on_progress(fraction: float) -> None:
            self.progress = fraction  # a float assignment is atomic

        def checkpoint() -> None:
            if cancel.is_set():
                raise Cancelled("Auto cancelled")

        def run() -> tuple[tuple, np.ndarray]:
            mask = auto_water_mask(session, image, embedding, prompt, progress=on_progress, checkpoint=checkpoint,
                                   points_per_side=points_per_side)
            return key, upscale_mask(mask, size) if size is not None else mask

        call = BackgroundCall(run)
        call.succeeded.connect(self._on_succeeded)
        call.failed.connect(self.failed)
        self._call, self._cancel = call, cancel
        call.start()

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def join(self, timeout: float) -> None:
        if self._call is not None:
            self._call.join(timeout)

    def _on_succeeded(self, result: tuple[tuple, np.ndarray]) -> None:
        self.done.emit(*result)
