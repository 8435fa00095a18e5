"""Auto for the segmentation controller: automatic mask generation for one image in a background thread.

The water mask it proposes (every AMG segment containing a positive point, `core.models.auto_water`) comes back
with the key the run was started for, (row, prompt key), so the controller shows it only while that key holds.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.gui.workers.background import BackgroundCall


class AutoRunner(QObject):
    """One Auto run at a time. Signals: done(key, mask (H, W) bool at the image's native size), failed(message).

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

    def start(self, session, image: np.ndarray, embedding, prompt: Prompt, key: tuple, points_per_side: int) -> None:
        """Run `auto_water_mask` on image (H, W, 3) uint8 with its embedding and prompt; `key` comes back with it."""
        from floodlabel.core.common.cancel import Cancelled
        from floodlabel.core.models.auto_water import auto_water_mask

        cancel = threading.Event()
        self.progress = 0.0

        def on_progress(fraction: float) -> None:
            self.progress = fraction  # a float assignment is atomic

        def checkpoint() -> None:
            if cancel.is_set():
                raise Cancelled("Auto cancelled")

        call = BackgroundCall(lambda: (key, auto_water_mask(session, image, embedding, prompt, progress=on_progress,
                                                            checkpoint=checkpoint, points_per_side=points_per_side)))
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
