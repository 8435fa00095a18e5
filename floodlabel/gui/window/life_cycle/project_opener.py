"""A folder's project opened and the previous one closed off the UI thread (issue 16 item 5: the WAL checkpoint
of the old project and the SQLite open of the new one stalled the event loop 0.1-0.6 s).

Rules:
- Closing (`close`): a project first waits (bounded, `PENDING_WAIT_S`, the UI alive) for what it still owes,
  the full-resolution masks of its maps accepted during their refine and accepts made before their mask was ready
  (`pending()`); it then closes in its StoreLink's writer thread after every queued write: the WAL checkpoint, the
  database close and only then the writer lock's release. Accepted masks are committed when accepted; a close only
  checkpoints.
- Opening (`open`): the store is made in a worker thread; opening a project that is still closing (the same folder
  again) waits there for that close, so the new store takes the writer lock instead of opening read-only.
- The window's first folder opens on the spot (`wait=True`): the window is not on screen yet, and its callers use
  the store at once.
- `wait_closed`: a window that closes waits (bounded, the UI alive) until every project it closed is closed.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.store.location import default_project_dir, find_project_dir
from floodlabel.core.store.project_store import ProjectStore
from floodlabel.gui.window.life_cycle.ui_wait import wait_with_ui
from floodlabel.gui.window.store_link import StoreLink
from floodlabel.gui.workers.background import BackgroundCall

PENDING_WAIT_S = 60.0
"""How long a closing project waits for the masks it still owes (a map's full-resolution refine) before it closes
with their view-level accepts."""

CLOSE_WAIT_S = 30.0
"""How long a closing window waits for its projects' queued writes and close (a checkpoint takes milliseconds to a
second; a lost mount may hang)."""


@dataclass
class Opened:
    """What opening a project gave: the store, or the error that kept it closed (a FloodLabelError)."""

    store: ProjectStore | None
    error: FloodLabelError | None


class ProjectOpener(QObject):
    """Opens projects in a worker and closes StoreLinks when they owe nothing more. Signals: opened(generation,
    Opened) for `open(..., wait=False)`; `generation` tells a late open from the latest one."""

    opened = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.generation = 0  # of the latest `open`
        self._closing: list[StoreLink] = []  # links waiting for what they owe, or closing
        self._calls: dict[QObject, tuple[int, BackgroundCall]] = {}

    @property
    def opening(self) -> bool:
        """An open runs in the worker (its `opened` has not come)."""
        return any(gen == self.generation for gen, _ in self._calls.values())

    @property
    def closing(self) -> list[StoreLink]:
        """The links not closed yet (waiting for their pending accepts, or in their close)."""
        return list(self._closing)

    def open(self, root: Path, project: Path | None, wait: bool = False) -> Opened | None:
        """Open (or create) the project of dataset folder `root` (`project`: its folder, None: the default). With
        `wait`, here and now: the result. Else in a worker: `opened(generation, result)` follows (None here)."""
        self.generation += 1
        closing = list(self._closing)
        if wait:
            return open_project(root, project, closing)
        call = BackgroundCall(lambda: open_project(root, project, closing))
        call.succeeded.connect(self._on_opened)
        call.failed.connect(self._on_open_failed)
        self._calls[call.relay] = (self.generation, call)
        call.start()
        return None

    def close(self, link: StoreLink, pending: Callable[[], list[str]],
              give_up: Callable[[list[str]], None]) -> None:
        """Close `link` once `pending()` (the images whose masks it still owes) is empty, or after PENDING_WAIT_S
        with `give_up(those images)` first (they keep what is saved); the close itself runs off the UI thread."""
        self._closing.append(link)
        link.closed.connect(functools.partial(self._forget, link))
        if not pending():
            link.close_later()
            return
        deadline = time.monotonic() + PENDING_WAIT_S
        timer = QTimer(self, interval=100)

        def check() -> None:
            left = pending()
            if left and time.monotonic() < deadline:
                return
            timer.stop()
            timer.deleteLater()
            if left:
                give_up(left)
            link.close_later()

        timer.timeout.connect(check)
        timer.start()

    def wait_closed(self, timeout: float = PENDING_WAIT_S + CLOSE_WAIT_S) -> bool:
        """Wait (the UI alive, at most `timeout` s) until every link given to `close` is closed. True when so."""
        return wait_with_ui(lambda: all(_closed(link) for link in self._closing), timeout)

    def _forget(self, link: StoreLink) -> None:
        if link in self._closing:
            self._closing.remove(link)

    def _on_opened(self, result: Opened) -> None:
        generation, _ = self._calls.pop(self.sender(), (None, None))
        if generation is not None:
            self.opened.emit(generation, result)

    def _on_open_failed(self, message: str) -> None:
        generation, _ = self._calls.pop(self.sender(), (None, None))
        if generation is not None:
            self.opened.emit(generation, Opened(None, FloodLabelError(message)))


def open_project(root: Path, project: Path | None, closing: list[StoreLink]) -> Opened:
    """ProjectStore(root, project), after the close of a link of `closing` on the same project folder (bounded):
    that link holds the writer lock until its close is done."""
    target = Path(project) if project is not None else (find_project_dir(root) or default_project_dir(root))
    target = target.expanduser().resolve()
    deadline = time.monotonic() + PENDING_WAIT_S + CLOSE_WAIT_S
    for link in closing:
        while link.project_dir == target and not _closed(link) and time.monotonic() < deadline:
            time.sleep(0.02)
    try:
        return Opened(ProjectStore(root, project), None)
    except FloodLabelError as exc:
        return Opened(None, exc)


def _closed(link: StoreLink) -> bool:
    return link.closing is not None and link.closing.is_set()
