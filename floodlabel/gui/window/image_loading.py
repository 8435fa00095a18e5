"""Loading for the segmentation controller, off the UI thread: the model session (`SessionOpener`), and an image
with the annotation restored from the project store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from floodlabel.core.annotation.annotation import Annotation
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.common.thread_priority import BACKGROUND_THREAD_NICE, lower_this_thread
from floodlabel.core.data.image_item import ImageItem
from floodlabel.core.tiles.map_item import load_item
from floodlabel.gui.workers.background import BackgroundCall
from floodlabel.gui.workers.on_screen import when_on_screen

DECODE_AHEAD_NICE = BACKGROUND_THREAD_NICE
"""How much lower than the window's the priority of the thread that decodes the next image is (`decode_ahead`)."""

Restore = Callable[[Path], tuple[dict | None, np.ndarray | None, str | None]]
"""image path -> (saved annotation state or None, accepted mask (H, W) bool or None, problem text or None)."""


class SessionOpener:
    """Opens model sessions in the background for `owner` (a QObject whose parent is the window): `opened(session)`
    or `failed(message)` on the UI thread.

    The worker starts once the window is on the screen (`when_on_screen`), so the window and its image list are
    painted first: the engine imports torch (about 2 s), holding the GIL for much of it. Of calls made before it
    starts, only the last one loads; none starts after `close()`.
    """

    def __init__(self, owner: QObject, opened: Callable[[object], None], failed: Callable[[str], None]) -> None:
        self.call: BackgroundCall | None = None  # the latest open's call
        self._owner, self._opened, self._failed = owner, opened, failed
        self._closed = False

    def open(self, model: str) -> None:
        """Load `model` ('classic', a registered name or a .pth path)."""
        call = BackgroundCall(lambda: open_session(model))
        call.succeeded.connect(self._opened)
        call.failed.connect(self._failed)
        self.call = call
        window = self._owner.parent()
        when_on_screen(self._owner, window if isinstance(window, QWidget) else None, lambda: self._start(call))

    def close(self) -> None:
        """Start no more calls (the one running, `call`, is left to finish)."""
        self._closed = True

    def _start(self, call: BackgroundCall) -> None:
        if call is self.call and not self._closed:
            call.start()


def open_session(model: str):
    """SegmentationSession.open in the worker, import included: the engine imports torch (about 2 s), which the UI
    thread must not wait for (the window and its image list appear meanwhile)."""
    from floodlabel.core.models.session import SegmentationSession

    return SegmentationSession.open(model)


def load_job(row: int, pair: ImagePair, prefetched: ImageItem | None,
             restore: Restore | None) -> Callable[[], tuple[int, ImageItem, tuple]]:
    """The loader's job for dataset row `row`: (row, the image (the prefetched one when it is this pair's image: a
    prefetch of another folder's row may land late), restore's answer)."""

    def job() -> tuple[int, ImageItem, tuple]:
        ok = prefetched is not None and Path(prefetched.path) == Path(pair.image)
        item = prefetched if ok else load_item(pair)
        return row, item, restore(pair.image) if restore is not None else (None, None, None)

    return job


def prefetch_job(row: int, pair: ImagePair, session,
                 items: dict[int, ImageItem]) -> Callable[[Callable[[], None]], None]:
    """The embed worker's prefetch job for dataset row `row`: decode the image once into `items` (row -> item, at
    most 2 kept; select() reuses it: a 12 MP JPEG takes ~100 ms) and compute its embedding into the cache."""

    def job(checkpoint: Callable[[], None]) -> None:
        item = load_item(pair)  # a large GeoTIFF: its view (core.tiles.map_item)
        while len(items) >= 2:
            items.pop(next(iter(items)), None)
        items[row] = item
        session.embedding(item.image, item.key, checkpoint=checkpoint)

    return job


def decode_ahead(pair: ImagePair) -> ImageItem:
    """`load_item(pair)` on a thread that lowers its own OS priority first (Linux: each thread has its own nice value;
    elsewhere it would lower the whole process's, so it does not): the image the user will probably open next,
    decoded without taking a core from a click."""
    lower_this_thread(DECODE_AHEAD_NICE)
    return load_item(pair)


def restored_annotation(state: dict | None, original_size: tuple[int, int]) -> Annotation:
    """The saved annotation when it belongs to an image of this (H, W), else a new one."""
    if state:
        try:
            annotation = Annotation.from_dict(state)
        except (KeyError, TypeError, ValueError):
            annotation = None
        if annotation is not None and tuple(annotation.original_size) == tuple(original_size):
            return annotation
    return Annotation(original_size)


def annotation_from_prompt(prompt: Prompt, original_size: tuple[int, int]) -> Annotation:
    """A new annotation of an (H, W) image with `prompt`'s points and box as its steps (compare on a dataset)."""
    annotation = Annotation(original_size)
    for (x, y), label in zip(prompt.points, prompt.labels):
        annotation.add_point(float(x), float(y), bool(label))
    if prompt.box is not None:
        annotation.set_box(tuple(float(v) for v in prompt.box))
    return annotation
