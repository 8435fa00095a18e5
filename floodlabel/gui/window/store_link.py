"""The window's link to the project store: accept, autosave and restore, all written off the UI thread, in order.

Writes go through one daemon thread in submission order (an autosave queued before an accept is written before
it), so the store never sees them interleaved. Results come back through a relay QObject's queued signals, as in
`background.py`.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.store.orphan_masks import OrphanMask
from floodlabel.core.store.project_store import ImageRecord, ProjectStore, Status, relative_image_path
from floodlabel.gui.workers.background import one_line_error
from floodlabel.gui.workers.daemon_thread import DaemonThread

AUTOSAVE_DELAY_MS = 700
"""In-progress work is saved this long after the last change (the issue asks for at most a second)."""


class StoreLink(QObject):
    """One open ProjectStore for a dataset folder. Signals:

    accepted(rel_path, record): an accept reached the disk. failed(message): a write failed (the mask stays in the
    window; nothing already accepted is touched). saved(rel_path): an autosave reached the disk.
    recovered(rel_paths): `recover` restored these accepted masks. writable(): a read-only link took over the
    project when the window that held it closed (`try_writable`). closed(): `close_later`'s close is done (the
    writer lock is released).
    """

    accepted = Signal(str, object)
    saved = Signal(str)
    failed = Signal(str)
    recovered = Signal(object)
    writable = Signal()
    closed = Signal()

    def __init__(self, store: ProjectStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._relay = _Relay()
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)
        self._jobs: queue.Queue = queue.Queue()
        self._thread = DaemonThread(self._run, "floodlabel-store")
        self._thread.start()
        self._pending_state: tuple[str, Callable[[], dict]] | None = None
        # rel_path -> (state, mask or None, why it is not on disk or None): writes that failed or are queued, given
        # back by `restore` so a failed accept (disk full) never loses the edit in the window
        self._unsaved: dict[str, tuple[dict | None, np.ndarray | None, str | None]] = {}
        self._unsaved_lock = threading.Lock()
        self._autosave = QTimer(self, singleShot=True, interval=AUTOSAVE_DELAY_MS)
        self._autosave.timeout.connect(self.flush)
        self.closing: threading.Event | None = None  # set by `close_later`; is_set() once the store is closed

    @property
    def read_only(self) -> bool:
        return self.store.read_only

    @property
    def read_only_reason(self) -> str:
        """Why the store is read-only (another window holds the project, the folder is not writable...)."""
        return self.store.read_only_reason

    @property
    def orphans(self) -> list[OrphanMask]:
        """Accepted masks on disk that the database does not list (`ProjectStore.orphans`)."""
        return self.store.orphans

    @property
    def created(self) -> bool:
        """The database was new (missing or empty) when the store opened."""
        return self.store.created

    @property
    def project_dir(self) -> Path:
        return self.store.project_dir

    @property
    def masks_dir(self) -> Path:
        return self.store.masks_dir

    def rel_path(self, image_path: Path) -> str:
        """The store's key of an image of the dataset (a linked-in photo keeps its own name; see
        `relative_image_path`)."""
        return relative_image_path(image_path, self.store.data_root)

    def recover(self, image_rel_paths: list[str]) -> None:
        """Restore the accepted masks the database does not list (`ProjectStore.recover_orphans`), in order with the
        other writes; `recovered(rel_paths)` when done."""
        self._submit(("recovered", ""), lambda: self.store.recover_orphans(image_rel_paths))

    def try_writable(self) -> None:
        """A read-only link (another window had the project) tries to take the project's lock; `writable()` when
        it did."""
        if self.read_only:
            self._submit(("writable", ""), lambda: self.store.try_take_writer_lock())

    def statuses(self) -> dict[str, Status]:
        return self.store.statuses()

    def proposal_confidences(self) -> dict[str, float]:
        """{relative path: confidence} of the project's pending proposals (`ProjectStore.proposal_confidences`)."""
        return self.store.proposal_confidences()

    def resume_image(self, rel_paths: list[str]) -> str | None:
        """The image to open (`ProjectStore.resume_image`): where the user left off, else the first not accepted."""
        return self.store.resume_image(rel_paths)

    def last_image(self) -> str | None:
        """The image the project reopens at (`ProjectStore.last_image`); None when unknown or unreadable."""
        try:
            return self.store.last_image()
        except FloodLabelError:
            return None

    def remember(self, rel_path: str) -> None:
        """The user is on `rel_path`: the project reopens there. Written in order with the other writes (a read-only
        store keeps it in memory); a failure says nothing (only where to reopen is lost)."""
        self._submit(("remembered", rel_path), lambda: self.store.remember_image(rel_path))

    def restore(self, image_path: Path) -> tuple[dict | None, np.ndarray | None, str | None]:
        """(annotation state, accepted mask (H, W) bool or None, a problem line or None). Runs in the loader thread.

        A write of this image that failed (or is still queued) wins over the store's, with a line saying it is not
        saved when it failed. An image whose file changed since it was saved is flagged and its state not matched to
        the new pixels. The accepted mask comes back only while the latest state builds on the accepted one
        (`builds_on`): work saved after the accept that changed the prompt is shown as that work, not the older mask.
        """
        rel = self.rel_path(image_path)
        with self._unsaved_lock:
            unsaved = self._unsaved.get(rel)
        if unsaved is not None and unsaved[1] is not None:
            return unsaved  # an accept that failed or is queued: its own mask
        record: ImageRecord | None = self.store.record(rel)
        if record is not None and record.changed:
            return None, None, "changed since it was saved: the stored mask is kept but not shown"
        state, problem = (unsaved[0], unsaved[2]) if unsaved is not None else (None, None)
        if record is None:
            return self._restore_proposal(rel) if unsaved is None else (state, None, problem)
        state = state if unsaved is not None else record.annotation_state
        mask = None
        if record.accepted and builds_on(state, record.accepted_state):
            try:
                mask = record.load_mask()
            except FloodLabelError as exc:
                problem = str(exc)
        return state, mask, problem

    def _restore_proposal(self, rel: str) -> tuple[dict | None, np.ndarray | None, str | None]:
        """A proposed image (no work yet): the proposal's state and mask, shown as a restored mask is (Enter accepts
        it as it stands); nothing when there is no proposal, or its image changed since."""
        proposal = self.store.proposal(rel)
        if proposal is None:
            return None, None, None
        if proposal.changed:
            return None, None, "changed since it was proposed: the proposal is not shown"
        try:
            return proposal.annotation_state, proposal.load_mask(), None
        except FloodLabelError as exc:
            return None, None, str(exc)

    def schedule_autosave(self, rel_path: str, state: Callable[[], dict]) -> None:
        """Save `state()` as in-progress work shortly (debounced); `flush` writes it at once."""
        if self.read_only:
            return
        if self._pending_state is not None and self._pending_state[0] != rel_path:
            self.flush()
        self._pending_state = (rel_path, state)
        self._autosave.start()

    def flush(self) -> None:
        """Queue the pending autosave now (before switching images, accepting or closing)."""
        self._autosave.stop()
        if self._pending_state is None:
            return
        rel, state = self._pending_state
        self._pending_state = None
        snapshot = state()  # taken on the UI thread: the annotation may change right after
        entry = self._keep_unsaved(rel, snapshot, None)
        self._submit(("saved", rel), lambda: self.store.save_progress(rel, snapshot), entry)

    def accept(self, rel_path: str, mask: np.ndarray, state: dict, model_id: str | None,
               metrics: dict[str, Any] | None) -> None:
        """Store `mask` ((H, W) bool, native size; a private copy) with its state; `accepted` when it is on disk."""
        if self._pending_state is not None and self._pending_state[0] == rel_path:
            self._pending_state = None  # the accept carries the same state
            self._autosave.stop()
        entry = self._keep_unsaved(rel_path, state, mask)
        self._submit(("accepted", rel_path),
                     lambda: self.store.accept(rel_path, mask, state, model_id=model_id, metrics=metrics), entry)

    def unsaved(self) -> list[str]:
        """The images whose last accept or autosave failed (or is still queued): their edits live only here."""
        with self._unsaved_lock:
            return sorted(self._unsaved)

    def failed_saves(self) -> list[str]:
        """The images whose last write failed (not those only queued)."""
        with self._unsaved_lock:
            return sorted(rel for rel, entry in self._unsaved.items() if entry[2] is not None)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued write is done; False on timeout."""
        return self.when_idle().wait(timeout)

    def when_idle(self) -> threading.Event:
        """An Event set once every write queued so far is done (the close's, once closing)."""
        if self.closing is not None:
            return self.closing
        done = threading.Event()
        self._jobs.put((None, done.set, None))
        return done

    def close_later(self) -> threading.Event:
        """Close the store in its writer thread after every queued write (the pending autosave is queued first):
        the WAL checkpoint, the database close and then the writer lock's release run off the UI thread. Returns
        an Event set when that is done (`closed()` follows on the UI thread); nothing is written after it. Safe to
        call twice (the same Event)."""
        if self.closing is not None:
            return self.closing
        self.flush()
        done = self.closing = threading.Event()

        def close() -> None:
            try:
                self.store.close()
            finally:
                done.set()

        self._submit(("closed", ""), close)
        self._jobs.put(None)  # the thread ends after the close
        return done

    def close(self, timeout: float | None = None) -> bool:
        """`close_later` and wait for it (at most `timeout` s; None: until done). True when the store is closed."""
        return self.close_later().wait(timeout)

    # ------------------------------------------------------------------------------------------------ helpers

    def _submit(self, tag: tuple[str, str], fn: Callable[[], Any], unsaved: tuple | None = None) -> None:
        if self.closing is not None and tag[0] != "closed":
            raise FloodLabelError("the project is closed: nothing more can be saved in it")
        self._jobs.put((tag, fn, unsaved))

    def _keep_unsaved(self, rel: str, state: dict | None, mask: np.ndarray | None) -> tuple:
        """Hold (state, mask, why) for `rel` until its write lands (`why` None while it is only queued). An autosave
        after a failed accept keeps that accept's mask and reason: the accept still has to be made again."""
        with self._unsaved_lock:
            old = self._unsaved.get(rel)
            why = None
            if mask is None and old is not None and old[1] is not None:
                mask, why = old[1], old[2]
            entry = (state, mask, why)
            self._unsaved[rel] = entry
        return entry

    def _landed(self, kind: str, rel: str, entry: tuple, error: str | None) -> None:
        """The `kind` write ("accepted", "saved") that held `entry` for `rel` ended, with `error` or None. A landed
        write forgets it, unless it is an autosave carrying a failed accept's mask (that accept is still to be
        made); a failed one keeps it with the reason. A newer write of `rel` holds its own entry and wins."""
        with self._unsaved_lock:
            if self._unsaved.get(rel) is not entry:
                return
            state, mask, _ = entry
            if error is None and (mask is None or kind == "accepted"):
                del self._unsaved[rel]
            elif error is None:
                self._unsaved[rel] = (state, mask, "this accepted mask is not saved yet: press Enter to save it")
            else:
                what = "accepted mask" if mask is not None else "work"
                self._unsaved[rel] = (state, mask, f"this {what} is not saved ({error}): press Enter to save it "
                                                   "again")

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            tag, fn, unsaved = job
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the window
                if unsaved is not None:
                    self._landed(tag[0], tag[1], unsaved, one_line_error(exc))
                if tag is not None and tag[0] not in ("writable", "remembered"):  # a failed take-over: try later
                    what = "Recovering the accepted masks" if tag[0] == "recovered" else f"Saving {tag[1]}"
                    self._relay.failed.emit(f"{what} failed: {one_line_error(exc)}")
            else:
                if unsaved is not None:
                    self._landed(tag[0], tag[1], unsaved, None)
                if tag is not None:
                    self._relay.done.emit(tag[0], tag[1], result)

    def _on_done(self, kind: str, rel: str, result: object) -> None:
        if kind == "accepted":
            self.accepted.emit(rel, result)
        elif kind == "recovered":
            self.recovered.emit(result)
        elif kind == "writable":
            if result:
                self.writable.emit()
        elif kind == "saved":
            self.saved.emit(rel)
        elif kind == "closed":
            self.closed.emit()

    def _on_failed(self, message: str) -> None:
        self.failed.emit(message)


class _Relay(QObject):
    done = Signal(str, str, object)
    failed = Signal(str)


def builds_on(state: dict | None, accepted: dict | None) -> bool:
    """Whether annotation `state` is the `accepted` state with strokes added at most: same prompt and candidate,
    and the accepted strokes a prefix of its strokes (the accepted mask plus the new strokes is then its mask).
    A missing state (a recovered mask, an old project) builds on anything."""
    if not state or not accepted:
        return True
    if state.get("prompt") != accepted.get("prompt") or state.get("candidate") != accepted.get("candidate"):
        return False
    strokes, base = state.get("strokes") or [], accepted.get("strokes") or []
    return strokes[:len(base)] == base
