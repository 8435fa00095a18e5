"""The segmentation controller's text steps (SAM 3's concept prompt): run a phrase, move the threshold, toggle the
instance under a click, cancel; and the model mask the text base makes with the decode (`core.annotation.text_step`).

Each step is an `Annotation` step (undo, replay and the store see it); the instances behind it come from
`text_prompt_jobs.TextPromptJobs` (a worker, once per image, model weights and phrase) and are kept at the view size.
The controller's `text_state` signal says what the Text panel shows.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from floodlabel.core.annotation.annotation import view_size
from floodlabel.gui.window.decode_jobs import Decoded
from floodlabel.gui.window.mask_composition import native_model_mask
from floodlabel.gui.window.text_prompt.text_prompt_jobs import (TextPromptJobs, instance_under, kept_count,
                                                               native_model_mask_with_text, view_model_mask_with_text)


class TextPromptSteps:
    """The text steps of `controller` (a SegmentationController: its annotation, item, session, row, embedding,
    `shown_fixed_mask` and `text_state` signal) on the instances `jobs` fetches. show_mask: re-render the controller's
    state (instances came); interacting: the user is working (the prefetch waits)."""

    def __init__(self, controller, jobs: TextPromptJobs, show_mask: Callable[[], None],
                 interacting: Callable[[], None]) -> None:
        self._c = controller
        self.jobs = jobs
        self._show_mask = show_mask
        self._interacting = interacting
        jobs.ready.connect(self._on_ready)

    @property
    def available(self) -> bool:
        """The session's segmenter takes text prompts (its capabilities say `text_prompt`: SAM 3)."""
        c = self._c
        return c.session is not None and c.session.segmenter.capabilities.text_prompt

    def run(self, phrase: str, threshold: float) -> None:
        """The text step (`Annotation.run_text`): every instance of `phrase` comes from the worker; those with
        score >= threshold become the base of the mask. ValueError for an empty phrase."""
        c = self._c
        if c.annotation is not None and self.available:
            self._interacting()
            c.annotation.run_text(phrase, threshold)

    def set_threshold(self, threshold: float) -> None:
        """Re-filter the instances (a step; the model does not run again)."""
        if self._c.annotation is not None:
            self._c.annotation.set_text_threshold(threshold)

    def toggle_at(self, x: float, y: float) -> bool:
        """Drop (or keep again) the text instance under (x, y), original frame; False when there is none there."""
        ann = self._c.annotation
        i = instance_under(ann, self.instances(), x, y) if ann is not None else None
        if i is None:
            return False
        ann.toggle_instance(i)
        return True

    def cancel(self) -> None:
        self.jobs.cancel()
        self.emit_state()

    def instances(self):
        """The current image's text instances (view size), None while they are not here."""
        key = self._key()
        return self.jobs.instances_for(key) if key is not None else None

    def ensure(self) -> None:
        """Fetch the current phrase's instances unless they are here or on their way (needs the embedding)."""
        key = self._key()
        c = self._c
        if key is None or c.embedding is None or not self.available:
            return
        self.jobs.ensure(key, c.session, c.embedding, key[2], key[3])

    def emit_state(self) -> None:
        """`text_state`: None without a text step, else (phrase, threshold, kept, above, found or None)."""
        ann = self._c.annotation
        if ann is None or ann.text is None:
            self._c.text_state.emit(None)
            return
        instances = self.instances()
        kept, above, found = kept_count(ann, instances)
        self._c.text_state.emit((ann.text.phrase, ann.text.threshold, kept, above,
                                 found if instances is not None else None))

    def view_mask(self, model_view: np.ndarray | None, view: tuple[int, int]) -> np.ndarray | None:
        """The model mask at the view size: with a text step (and no fixed mask shown) the text base with the
        decode `model_view`, else `model_view`."""
        ann = self._c.annotation
        if ann.text is not None and self._c.shown_fixed_mask() is None:
            return view_model_mask_with_text(ann, self.instances(), model_view, view)
        return model_view

    def native_mask(self, shown: Decoded | None, chosen: int, model_view: np.ndarray | None,
                    native_size: tuple[int, int]) -> tuple[bool, bool, np.ndarray | None]:
        """(ready, texted, the model mask at the native size) for `mask_composition.saved_mask`: ready False while
        it has to come from the decode worker; texted: the text base is in it."""
        ann, fixed = self._c.annotation, self._c.shown_fixed_mask()
        texted = ann.text is not None and fixed is None
        if texted and model_view is not None and model_view.shape == native_size:
            return True, texted, model_view  # already the text base with the decode
        decoded_view = shown.prediction.mask(chosen) if texted and shown is not None else model_view
        ready, model_native = native_model_mask(fixed, shown, chosen, decoded_view, native_size)
        if ready and texted:
            model_native = native_model_mask_with_text(ann, self.instances(), model_native, native_size)
        return ready, texted, model_native

    def _key(self) -> tuple | None:
        c = self._c
        ann, item = c.annotation, c.item
        if ann is None or ann.text is None or item is None or c.session is None:
            return None
        return (c.row, c.session.segmenter.weights_id, ann.text.phrase, view_size(item.original_size))

    def _on_ready(self) -> None:
        if self._c.annotation is not None and self.instances() is not None:
            self.emit_state()
            self._show_mask()
