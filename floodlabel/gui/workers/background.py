"""Run core calls off the UI thread and report back through Qt signals (queued onto the UI thread).

The work runs in a daemon thread (`gui.workers.daemon_thread.DaemonThread`), not a QThread or the global
QThreadPool: closing the app while a download waits on a stalled network must neither abort the process ("QThread
destroyed while still running") nor block exit until the socket times out.

Results cross to the UI thread through the signals of a parentless relay QObject that the worker thread keeps alive,
so a worker never emits on a deleted object (emitting on a QObject that the UI thread is destroying segfaults). When
the thread ends, what it held (the relay with it) is released on the UI thread, not on the worker: see
daemon_thread.py for the crash that this avoids.
Connect the signals to methods of widgets: the slots then run queued on the UI thread, and Qt drops the connection
when the widget is deleted. Do not connect lambdas that touch widgets: they would run in the worker thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from floodlabel.core.common.errors import FloodLabelError
from floodlabel.gui.workers.daemon_thread import DaemonThread


class BackgroundCall:
    """Calls `fn()` once in a daemon thread; `succeeded(result)` or `failed(message)` is emitted when it is done.

    `message` is one line: the FloodLabelError text, or "TypeName: text" for anything unexpected.
    `relay` is the QObject the signals belong to (what `QObject.sender()` returns in a slot).
    """

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self.relay = _CallRelay()
        self.succeeded = self.relay.succeeded
        self.failed = self.relay.failed
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = DaemonThread(self._run, "floodlabel-background")
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the call has returned (True) or `timeout` s passed (False)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_running()

    def _run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the window
            self.relay.failed.emit(one_line_error(exc))
        else:
            self.relay.succeeded.emit(result)


class BackgroundJob:
    """Long work with progress and cancel: `fn(progress, cancel)` runs once in a daemon thread.

    `progress(event)` (any object) reaches the UI thread as the `progress` signal; `cancel` is a threading.Event the
    work checks (`cancel()` sets it). Exactly one of `finished(result)` or `failed(message)` is emitted at the end.
    `join` waits for the thread: torch work must not be left running in a daemon thread when the interpreter exits.
    """

    def __init__(self, fn: Callable[[Callable[[object], None], threading.Event], Any], name: str = "job") -> None:
        self._fn = fn
        self.name = name
        self.relay = _JobRelay()
        self.progress = self.relay.progress
        self.finished = self.relay.finished
        self.failed = self.relay.failed
        self.cancel_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = DaemonThread(self._run, f"floodlabel-{self.name}")
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_event.is_set()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the work has returned (True) or `timeout` s passed (False)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_running()

    def _run(self) -> None:
        relay = self.relay  # the relay lives as long as the thread (see the module docstring)
        try:
            result = self._fn(relay.progress.emit, self.cancel_event)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the window
            relay.failed.emit(one_line_error(exc))
        else:
            relay.finished.emit(result)


class DownloadTask:
    """Downloads one registered SAM checkpoint with `core.model_download.download_model` in a daemon thread.

    Signals: progress(bytes_done, bytes_total; total 0 when unknown), finished(path of the verified checkpoint),
    failed(one-line message), cancelled(). Progress is emitted at most once per whole percent (or per MiB when the
    size is unknown).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.relay = _DownloadRelay()
        self.progress = self.relay.progress
        self.finished = self.relay.finished
        self.failed = self.relay.failed
        self.cancelled = self.relay.cancelled
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_step = -1

    def start(self) -> None:
        self._thread = DaemonThread(self._run, f"floodlabel-download-{self.name}")
        self._thread.start()

    def cancel(self) -> None:
        """Ask the transfer to stop; it does within one 256 KiB chunk (the partial file is kept for resuming)."""
        self._cancel.set()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            from floodlabel.core.models.download import download_model  # imports torch: keep it off the UI thread

            path = download_model(self.name, progress=False, progress_callback=self._on_progress,
                                  cancel_event=self._cancel)
        except Exception as exc:  # noqa: BLE001
            if self._cancel.is_set():
                self.relay.cancelled.emit()
            else:
                self.relay.failed.emit(one_line_error(exc))
        else:
            self.relay.finished.emit(str(Path(path)))

    def _on_progress(self, done: int, total: int) -> None:
        step = done * 100 // total if total else done >> 20
        if step != self._last_step or done == total:
            self._last_step = step
            self.relay.progress.emit(done, total)


def one_line_error(exc: BaseException) -> str:
    """The text a user sees for an exception: FloodLabelError messages as they are, others prefixed by type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, FloodLabelError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------------------------------- helpers


class _CallRelay(QObject):
    succeeded = Signal(object)
    failed = Signal(str)


class _JobRelay(QObject):
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)


class _DownloadRelay(QObject):
    progress = Signal("qlonglong", "qlonglong")
    finished = Signal(str)
    failed = Signal(str)
    cancelled = Signal()
