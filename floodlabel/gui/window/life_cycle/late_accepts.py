"""An accept made before its image's full-size mask was ready (Enter while the decode at the native size ran) whose
image the user then left (another image, another folder, closing the window): it is saved for *that* image, never
for the one on screen when the mask comes.

While the user stays on the image, the accept goes ahead when the mask lands there (`WaitingAccept.is_on`). When
the user leaves first, `LateAccepts.finish` makes the mask off the UI thread and saves it in the project the accept
was made in; on a map the full-resolution refine follows (`maps.tiled_refine.RefinedAccepts`):
- when the native mask was being composed (a stroke, a fixed mask, the text instances: `native.native_compose`),
  by that compose job itself, made of the version accepted;
- else (its decode at the native size ran) by decoding the accept's prompt again from what it was made of (the
  image's embedding, prompt, candidate, strokes and GT, as `decode_jobs.decode_prompt` does for a new prompt). A
  text prompt's mask is not made that way: the window says it was not saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.annotation import Annotation, view_size
from floodlabel.gui.window.decode_jobs import decode_prompt, decode_session, with_threads
from floodlabel.gui.window.maps.tiled_refine import RefinedAccepts, RefineRequest
from floodlabel.gui.window.mask_composition import stroke_snapshot
from floodlabel.gui.window.store_link import StoreLink
from floodlabel.gui.workers.background import BackgroundCall


@dataclass(frozen=True)
class WaitingAccept:
    """Enter was pressed on dataset row `row` (`item`, `annotation`) of project `owner` before its full-size mask
    was ready."""

    owner: StoreLink
    row: int
    item: Any
    annotation: Annotation

    def is_on(self, controller, owner: StoreLink | None) -> bool:
        """Whether `controller` still shows the image this accept was made on, in project `owner`."""
        return owner is self.owner and controller.item is self.item and controller.annotation is self.annotation


class LateAccepts(QObject):
    """The waiting accepts whose image was left (rules in the module docstring). Signals: saved(rel): handed to
    its project's store; failed(rel, message): it could not be made (nothing was saved for it)."""

    saved = Signal(str)
    failed = Signal(str, str)

    def __init__(self, refined: RefinedAccepts, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.refined = refined
        self._running: dict[QObject, tuple[StoreLink, str, dict, str | None, Any, Any, BackgroundCall]] = {}

    @property
    def pending(self) -> list[str]:
        """The images (of any project) whose late accept is still being made."""
        return sorted(rel for _, rel, *_ in self._running.values())

    def pending_for(self, owner: StoreLink) -> list[str]:
        """The images of project `owner` whose late accept is still being made."""
        return sorted(rel for o, rel, *_ in self._running.values() if o is owner)

    def finish(self, waiting: WaitingAccept, controller) -> bool:
        """Make and save `waiting`'s mask off the UI thread; `controller` still shows its image (its embedding,
        session, prompt). False when that cannot be done here (a text prompt, no embedding)."""
        c, ann, item, owner = controller, waiting.annotation, waiting.item, waiting.owner
        compose = c.native.job_for(ann)
        if compose is not None:
            self._start(waiting, c, _composed(compose, item.original_size, c.pending_refine()))
            return True
        if c.session is None or c.embedding is None or ann.prompt.text is not None or not ann.prompt.has_geometry:
            return False
        prompt, candidate, gt, version = ann.prompt, ann.candidate, item.gt, ann.version
        key, size, layer = c.prompt_key(prompt), view_size(item.original_size), stroke_snapshot(ann, item.original_size)
        session, embedding = decode_session(c.session, item), c.embedding
        wants_refine = c.refiner.wanted(item) and candidate is None
        job = with_threads(lambda: decode_prompt(session, embedding, key, prompt, candidate, size, layer, gt,
                                                 version), 1)

        def make() -> tuple[np.ndarray, dict | None, RefineRequest | None]:
            *_, result = job()  # the view part first, then the native one: only the latter is saved
            request = RefineRequest((waiting.row, key), prompt, result.native_mask, layer, gt) if wants_refine \
                else None
            metrics = result.metrics.as_dict() if result.metrics is not None else None
            return result.composed, metrics, request

        self._start(waiting, c, make)
        return True

    def _start(self, waiting: WaitingAccept, c, make) -> None:
        owner, item = waiting.owner, waiting.item
        rel = owner.rel_path(item.path)
        call = BackgroundCall(make)
        call.succeeded.connect(self._on_made)
        call.failed.connect(self._on_failed)
        model_id = c.session.model_id if c.session else None
        self._running[call.relay] = (owner, rel, waiting.annotation.to_dict(), model_id, c.session, item, call)
        call.start()

    def _on_made(self, result: tuple[np.ndarray, dict | None, RefineRequest | None]) -> None:
        entry = self._running.pop(self.sender(), None)
        if entry is None:
            return
        owner, rel, state, model_id, session, item, _ = entry
        mask, metrics, request = result
        if owner.closing is not None:
            self.failed.emit(rel, "its project was closed first")
            return
        owner.accept(rel, mask, state, model_id, metrics)
        if request is not None:
            self.refined.hold(rel, request, session, item, state, model_id, owner.accept, owner)
        self.saved.emit(rel)

    def _on_failed(self, message: str) -> None:
        entry = self._running.pop(self.sender(), None)
        if entry is not None:
            self.failed.emit(entry[1], message)


def _composed(job, size: tuple[int, int], request: RefineRequest | None):
    """A late accept's work from the controller's native compose `job` (`native.native_compose.NativeMask`): the
    mask (an empty one of `size` without any), its metrics as a dict and the refine `request` (or None)."""

    def make() -> tuple[np.ndarray, dict | None, RefineRequest | None]:
        result = job()
        mask = result.mask if result.mask is not None else np.zeros(size, bool)
        return mask, result.metrics.as_dict() if result.metrics is not None else None, request

    return make
