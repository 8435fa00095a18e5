"""`DaemonThread`: a daemon `threading.Thread` whose target is released on the UI thread when it ends.

A Python thread drops its target (and the target's arguments) when it ends. When that is the last reference to a
QObject, typically a worker's signal relay held through the bound method `worker._run`, the QObject's C++ destructor
runs on the worker thread. If the UI thread destroys a QObject connected to it at the same moment, both threads are
in `QObject::~QObject`, PySide reads a wrapper that the other thread is freeing, and the process segfaults. That
happened in CI on 2026-12-03 (test_background_encoder): the UI thread in `~QObject > Sbk_GetPyOverride >
PyDict_GetItem`, a worker thread in `~QObject` from `threading.Thread.run`'s `del self._target`.

A `DaemonThread` hands its target and arguments to the UI thread instead: a queued signal carries them to a QObject
that lives there, and they are released when the UI thread's event loop next runs. Without a QApplication (the CLI,
plain Python) it behaves like a plain daemon thread. Every thread the GUI starts is one of these.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot

__all__ = ["DaemonThread", "release_on_ui_thread"]


class DaemonThread(threading.Thread):
    """threading.Thread(target=target, args=args, name=name, daemon=True), but what the target holds is released on
    the UI thread once it returns or raises (see the module docstring). An exception is reported to
    `threading.excepthook`, as a plain thread's is."""

    def __init__(self, target: Callable[..., Any], name: str, args: tuple = ()) -> None:
        super().__init__(name=name, daemon=True)
        self._work: tuple[Callable[..., Any], tuple] | None = (target, args)  # None once run

    def run(self) -> None:
        work, self._work = self._work, None
        failure: BaseException | None = None
        try:
            work[0](*work[1])
        except BaseException as exc:  # noqa: BLE001 - reported as threading reports it, then released below
            failure = exc
            threading.excepthook(threading.ExceptHookArgs((type(exc), exc, exc.__traceback__, self)))
        # the target, its arguments and a failure's traceback (its frames hold the target's locals)
        release_on_ui_thread((work, failure))
        del work, failure  # the queued event holds the last references now


def release_on_ui_thread(held: object) -> None:
    """Drop this thread's reference to `held` such that, if it was the last one, `held` is freed on the UI thread
    (when its event loop next runs). Call it with the only reference you hold, then drop yours."""
    releaser = _releaser()
    if releaser is not None and threading.current_thread() is not threading.main_thread():
        releaser.handed.emit(held)


class _Releaser(QObject):
    """Lives on the UI thread: what `handed` carries is released there, after the slot has run."""

    handed = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.handed.connect(self._release, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _release(self, held: object) -> None:
        del held


_lock = threading.Lock()
_instance: _Releaser | None = None


def _releaser() -> _Releaser | None:
    """The application's releaser (made on first need, moved to the UI thread), or None without a QApplication."""
    global _instance
    app = QCoreApplication.instance()
    if app is None:
        return None
    with _lock:
        if _instance is None:
            releaser = _Releaser()
            if releaser.thread() is not app.thread():
                releaser.moveToThread(app.thread())
            _instance = releaser
        return _instance
