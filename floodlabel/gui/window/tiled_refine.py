"""The full-resolution refine of a large map's mask (issue 17): after a prompt is decoded on the map's view, the
tiled decode (`core.tiles.tiled.TiledDecoder`: 1024 px tiles with a 128 px halo, read from the file at full
resolution) runs in a background thread and its stitched mask replaces the view-level one while the prompt holds.

How the two levels meet: the view-level decode (one embedding of the whole view, upscaled) is shown at once; the
refine's mask comes back with the key it was started for, (row, prompt key), and the controller shows it as the
model mask (`SegmentationController._on_auto`'s rule: a fixed mask shown until the prompt changes; strokes stay on
top). The refined mask replaces the view-level one inside the cores of the tiles the refine decoded
(`TiledResult.owned`); outside them the view-level mask is kept (water not reached from the prompt's tiles). A new prompt, another image or closing cancels the running refine (between
tiles); one TiledDecoder per image and model keeps the tile embeddings (LRU, plus the session's cache).
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.tiles.map_item import MapItem
from floodlabel.core.tiles.tiled import TiledDecoder, map_reader
from floodlabel.gui.workers.background import BackgroundJob


class TiledRefiner(QObject):
    """One refine at a time. Signals: done(key, mask (H, W) bool, owned (H, W) bool: where `mask` is the tiled
    decode's), progress(one status line)."""

    done = Signal(object, object, object)
    progress = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._job: BackgroundJob | None = None
        self._decoder: TiledDecoder | None = None
        self._decoder_key: tuple | None = None
        self._lock = threading.Lock()  # one thread in the TiledDecoder at a time (a cancelled one finishes a tile)
        self._started = 0.0
        self.last_key: tuple | None = None

    @staticmethod
    def wanted(item) -> bool:
        """Whether an image is refined tile by tile: a MapItem (a GeoTIFF opened through its view)."""
        return isinstance(item, MapItem)

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.is_running()

    def start(self, session, item: MapItem, prompt: Prompt, key: tuple) -> None:
        """Refine `prompt` (full-frame) on `item`; `done(key, mask, owned)` when finished. Cancels the previous
        refine."""
        from floodlabel.core.common.cancel import Cancelled

        self.cancel()
        decoder = self._decoder_for(session, item)
        self.last_key, self._started = key, time.perf_counter()

        def run(progress, cancel: threading.Event):
            def checkpoint() -> None:
                if cancel.is_set():
                    raise Cancelled("refine superseded")

            with self._lock:
                try:
                    result = decoder.decode(prompt, checkpoint, progress)
                except Cancelled:
                    return None
            return key, result.mask, result.owned, len(result.tiles)

        job = BackgroundJob(run, name="tiled-refine")
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        self._job = job
        self.progress.emit("Full resolution: reading tiles …")
        job.start()

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def join(self, timeout: float) -> None:
        if self._job is not None:
            self._job.join(timeout)

    def _decoder_for(self, session, item: MapItem) -> TiledDecoder:
        key = (item.key, session.model_id)
        if self._decoder is None or self._decoder_key != key:
            self._decoder = TiledDecoder(session, map_reader(item.path, item.stretch), item.original_size, item.key)
            self._decoder_key = key
        return self._decoder

    def _on_progress(self, tiles: int) -> None:
        if self.sender() is (self._job.relay if self._job is not None else None):
            self.progress.emit(f"Full resolution: {tiles} tile{'s' if tiles != 1 else ''} decoded …")

    def _on_finished(self, result: tuple | None) -> None:
        if result is None:
            return
        key, mask, owned, tiles = result
        if key != self.last_key:
            return
        self.progress.emit(f"Full resolution: {tiles} tile{'s' if tiles != 1 else ''} in "
                           f"{time.perf_counter() - self._started:.1f} s")
        self.done.emit(key, np.asarray(mask, bool), np.asarray(owned, bool))

    def _on_failed(self, message: str) -> None:
        self.progress.emit(f"Full-resolution refine failed: {message}")
