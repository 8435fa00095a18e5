"""The image list's header scan: image and mask sizes read from file headers by a daemon thread, in chunks,
reported through a relay QObject like gui/workers/background.py, so the list never blocks.
"""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QObject, Signal

from floodlabel.core.common.errors import ImageReadError
from floodlabel.core.data.datasets import FloodDataset
from floodlabel.core.data.images import pixel_limit_problem

SIZE_CHUNK = 64
"""Rows whose headers are read before one result is sent to the UI thread."""
GIL_HANDOVER_S = 0.002
"""The header scan hands the GIL over at least this often (Python's own switch interval is 5 ms)."""


class SizeRelay(QObject):
    sizes = Signal(int, object)  # generation, [(row, image size, mask size, error)]
    done = Signal(int)


class SizeScanner:
    """Reads the image and mask header of every pair in a daemon thread, SIZE_CHUNK rows per `sizes` signal.

    Uses `dataset.image_size`, so the sizes are cached on the dataset for later use. `stop()` ends it after the
    current file. The relay is parentless and kept alive by the thread (see gui/background.py).
    """

    def __init__(self, dataset: FloodDataset, generation: int) -> None:
        self._dataset = dataset
        self._generation = generation
        self._stop = threading.Event()
        self.relay = SizeRelay()
        self._thread = threading.Thread(target=self._run, name="floodlabel-image-sizes", daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        relay, chunk = self.relay, []
        handover = time.perf_counter() + GIL_HANDOVER_S
        for row, pair in enumerate(self._dataset.pairs):
            if self._stop.is_set():
                return
            image_size = mask_size = error = None
            try:
                image_size = self._dataset.image_size(pair.image)
                too_large = pixel_limit_problem(image_size)
                error = f"unreadable: {too_large}" if too_large else None
            except ImageReadError as exc:
                error = f"unreadable: {exc.reason}"
            if pair.mask is not None:
                try:
                    mask_size = self._dataset.image_size(pair.mask)
                except ImageReadError as exc:
                    error = error or f"unreadable mask: {exc.reason}"
            chunk.append((row, image_size, mask_size, error))
            if time.perf_counter() >= handover:  # let a waiting UI thread take the GIL now, not after 5 ms:
                time.sleep(0)  # each of Qt's calls into Python while painting would wait that long
                handover = time.perf_counter() + GIL_HANDOVER_S
            if len(chunk) >= SIZE_CHUNK:
                relay.sizes.emit(self._generation, chunk)
                chunk = []
        if chunk and not self._stop.is_set():
            relay.sizes.emit(self._generation, chunk)
        relay.done.emit(self._generation)
