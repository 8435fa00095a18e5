"""The annotation window's project side: the store behind Accept, autosave and restore, statuses, the accepted
counter, recovery of lost masks, export. A collaborator of AnnotationWindow, given the window parts it uses.

Opening another folder opens its project in a worker and closes the previous one off the UI thread, once it has
saved what it still owes (`life_cycle.project_opener`); an accept made before its mask was ready is saved for its
own image even when the user leaves it first (`life_cycle.late_accepts`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from floodlabel.core.common.errors import DamagedProjectError, FloodLabelError
from floodlabel.core.common.paths import data_dir
from floodlabel.core.data.datasets import FloodDataset
from floodlabel.core.store.project_store import ProjectStore, relative_image_path
from floodlabel.gui.panels.finetune_panel import FinetunePanel
from floodlabel.gui.panels.image_list import ImageListDock
from floodlabel.gui.panels.project_notice import ProjectNotice
from floodlabel.gui.resources import sample_dataset_dir
from floodlabel.gui.window.segmentation_controller import SegmentationController
from floodlabel.gui.window.life_cycle.late_accepts import LateAccepts, WaitingAccept
from floodlabel.gui.window.life_cycle.project_opener import PENDING_WAIT_S, Opened, ProjectOpener
from floodlabel.gui.window.life_cycle.ui_wait import wait_with_ui
from floodlabel.gui.window.store_link import StoreLink
from floodlabel.gui.window.maps.tiled_refine import RefinedAccepts
from floodlabel.gui.workers.background import BackgroundCall

LOCK_POLL_MS = 2000
"""A read-only window (another one had the project) checks this often whether the project is free to take over."""


class ProjectActions(QObject):
    """Accept (Enter), export and the project store's link to the image list, notices and status bar.

    `store` is the open StoreLink (None: no project, accepting is off); `dataset` the folder it belongs to.
    `select_image(row)` shows another image (after an accept); `show_message(text)` is the window's message line.
    Signal opened(): `open_store`'s project is open (or could not be: `store` is None then).
    """

    opened = Signal()

    def __init__(self, controller: SegmentationController, image_list: ImageListDock, notice: ProjectNotice,
                 finetune_panel: FinetunePanel, project_label: QLabel, status_bar: QStatusBar,
                 accept_action: QAction, export_action: QAction, select_image: Callable[[int], None],
                 show_message: Callable[[str], None], requested_project: str | Path | None,
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.controller = controller
        self.image_list = image_list
        self.notice = notice
        self.finetune_panel = finetune_panel
        self.project_label = project_label
        self.status_bar = status_bar
        self.accept_action = accept_action
        self.export_action = export_action
        self.select_image = select_image
        self.show_message = show_message
        self.requested_project = requested_project  # --project (None: next to the data, see _project_dir_for)
        self.window = parent
        self.store: StoreLink | None = None
        self.dataset: FloodDataset | None = None
        self.accepted_rows: set[int] = set()
        self.rows_by_rel: dict[str, int] = {}  # the store's key of each image -> its dataset row
        self.remembered: str | None = None  # the image the project reopens at, as last written (`remember`)
        self.waiting: WaitingAccept | None = None  # Enter came before the full-size mask: accept when it lands
        self.lock_timer = QTimer(self, interval=LOCK_POLL_MS)  # a read-only window takes over a freed project
        self.lock_timer.timeout.connect(self._try_writable)
        self.recovery_call: BackgroundCall | None = None
        self.refined = RefinedAccepts(controller.refiner, self)  # accepts of maps finished at full resolution
        self.refined.saved.connect(lambda rel: self.status_bar.showMessage(f"Saved the full-resolution mask of {rel}",
                                                                           4000))
        self.refined.failed.connect(lambda rel, why: self.show_message(
            f"The full-resolution mask of {rel} could not be made ({why}): its view-level mask is saved."))
        self.late = LateAccepts(self.refined, self)  # waiting accepts whose image was left first
        self.late.saved.connect(lambda rel: self.status_bar.showMessage(
            f"Saved {rel}: accepted before its mask was ready", 4000))
        self.late.failed.connect(lambda rel, why: self.notice.show_notice(
            "late-accept", f"The accept of {rel} could not be saved ({why}): open it and press Enter again."))
        self.opener = ProjectOpener(self)  # projects open and close off the UI thread
        self.opener.opened.connect(self._on_opened)
        self._opening: tuple[FloodDataset, Path | None] | None = None  # the folder whose project is opening

    # ------------------------------------------------------------------------------------------------ public

    @property
    def project_store(self) -> ProjectStore | None:
        """The open ProjectStore itself (for the Fine-tune panel), or None."""
        return self.store.store if self.store is not None else None

    @property
    def saving(self) -> bool:
        """A project is open and this window may write to it."""
        return self.store is not None and not self.store.read_only

    def accept_mask(self) -> None:
        """Enter: store the mask that would be saved (native size) with its prompts, then the next image."""
        c = self.controller
        if self.store is None or c.item is None or c.annotation is None:
            return
        if self.store.read_only:
            self.notice.show_notice("read-only", f"This project is read-only: {self.store.read_only_reason}")
            return
        if not c.native_ready():  # saved when it lands, for this image (`leave_image`: also when the user leaves it)
            self.waiting = WaitingAccept(self.store, c.row, c.item, c.annotation)
            self.status_bar.showMessage("Preparing the full-size mask …")
            return
        self.waiting = None
        mask = c.native_mask.copy() if c.native_mask is not None else np.zeros(c.item.original_size, bool)
        metrics = c.metrics.as_dict() if c.metrics is not None else None
        rel = self.store.rel_path(c.item.path)
        self.remember(c.row)
        state, model_id = c.annotation.to_dict(), c.session.model_id if c.session else None
        self.store.accept(rel, mask, state, model_id, metrics)
        refine = c.pending_refine()  # a map's full-resolution mask not in yet: saved over this one when it is
        if refine is not None:
            self.refined.hold(rel, refine, c.session, c.item, state, model_id, self.store.accept, self.store)
            self.status_bar.showMessage(f"Saved {rel} at view resolution; its full-resolution mask follows …")
        else:
            self.refined.forget(rel, self.store)
            self.status_bar.showMessage(f"Saving {rel} …", 2000)
        nxt = self._next_unaccepted(c.row)
        if nxt is not None:
            self.select_image(nxt)

    def export_masks(self) -> None:
        if self.store is None:
            return
        from floodlabel.gui.dialogs.export_dialog import ExportDialog

        self.store.flush()
        self.store.wait_idle()
        ExportDialog(self.store.store, parent=self.window).open()

    def open_store(self, dataset: FloodDataset, wait: bool = False) -> None:
        """Close the current project (off the UI thread, once it saved what it still owes) and open (or create) the
        one of `dataset`: here and now with `wait` (the window's first folder, before it is shown), else in a
        worker. `opened()` follows either way; a notice says what is wrong."""
        self.leave_image()
        self.dataset = dataset
        old, self.store = self.store, None
        if old is not None:
            owed = self._owed(old)
            self._close_link(old)
            if owed:
                self.status_bar.showMessage(f"The previous project closes once the full-resolution mask of "
                                            f"{', '.join(owed)} is saved in it", 6000)
        self.lock_timer.stop()
        self.notice.dismiss()
        self.controller.restore_fn = None
        self.remembered = None
        self._store_off("Opening the project …")
        self._opening = (dataset, self._project_dir_for(dataset.root))
        opened = self.opener.open(dataset.root, self._opening[1], wait=wait)
        if opened is not None:
            self._on_opened(self.opener.generation, opened)

    @property
    def opening(self) -> bool:
        """A folder's project is being opened (`opened()` has not come)."""
        return self._opening is not None

    def _on_opened(self, generation: int, opened: Opened) -> None:
        """The worker opened the project (or could not): the store behind Accept from now on, or a notice."""
        if generation != self.opener.generation or self._opening is None:
            if opened.store is not None:  # another folder came meanwhile, or the window closes: closed again
                self._close_link(StoreLink(opened.store, parent=self))
            return
        (dataset, project), self._opening = self._opening, None
        root, exc = dataset.root, opened.error
        if isinstance(exc, DamagedProjectError):
            self._store_off("No project: its database cannot be read")
            detail = f" ({exc.detail})" if exc.detail else ""
            self.notice.show_notice(
                "damaged", f"The project database {exc.path} cannot be read{detail}. Accepting is off and nothing "
                           "was changed. Your accepted masks are kept: Recover masks moves the damaged database "
                           "aside and rebuilds the project from them.", "Recover masks",
                lambda: self._recover_damaged(root, project))
        elif exc is not None:
            self._store_off("No project: accepting is off")
            self.notice.show_notice("store", f"Masks cannot be saved for this folder: {exc}")
        else:
            self._use_store(StoreLink(opened.store, parent=self))
        self.opened.emit()

    def _use_store(self, link: StoreLink) -> None:
        self.store = link
        link.accepted.connect(self._on_accepted)
        link.failed.connect(self._on_save_failed)
        link.recovered.connect(self._on_recovered)
        link.writable.connect(self._on_writable)
        self.controller.restore_fn = link.restore
        self.remembered = link.last_image()
        self.accept_action.setEnabled(not link.read_only)
        self.export_action.setEnabled(True)
        if link.read_only:
            self.notice.show_notice(
                "read-only", f"Read-only: {link.read_only_reason}. Nothing you do in this window is saved.")
            self.lock_timer.start()
        else:
            self._offer_recovery()

    def _close_link(self, link: StoreLink) -> None:
        """Close `link` off the UI thread once it owes nothing (`project_opener`'s rules)."""
        self.opener.close(link, lambda: self._owed(link), lambda rels: self._give_up(link, rels))

    def _owed(self, link: StoreLink) -> list[str]:
        """The images whose mask project `link` still has to save: maps' full-resolution masks, late accepts."""
        return self.refined.pending_for(link) + self.late.pending_for(link)

    def _give_up(self, link: StoreLink, rels: list[str]) -> None:
        """`link` closes without the masks of `rels`: what is saved of them stays, and the window says so."""
        self.refined.drop(link)
        text = (f"The full-resolution mask of {', '.join(rels)} was not finished in {PENDING_WAIT_S:g} s, before "
                f"its project closed: its view-level mask (upscaled to full size) is the one saved.")
        self.notice.show_notice("refine-unfinished", text)
        self.status_bar.showMessage(text)
        print(f"floodlabel: {text}", file=sys.stderr)

    def show_statuses(self) -> None:
        """Every image's status from the store into the image list, and the accepted counter."""
        if self.store is None or self.dataset is None:
            return
        statuses = self.store.statuses()
        self.rows_by_rel = {self.store.rel_path(pair.image): row for row, pair in enumerate(self.dataset.pairs)}
        shown = {row: str(statuses[rel]) for rel, row in self.rows_by_rel.items() if rel in statuses}
        self.image_list.set_statuses(shown)
        confidences = self.store.proposal_confidences()  # proposals: "Least confident first" is the review queue
        self.image_list.set_confidences({row: confidences[rel] for rel, row in self.rows_by_rel.items()
                                         if rel in confidences})
        self.accepted_rows = {row for row, status in shown.items() if status == "accepted"}
        self._update_project_label(statuses)

    def resume_row(self) -> int:
        """The dataset row to show when the folder opens: the image the user was last on, else the first not
        accepted (`ProjectStore.resume_image`); 0 without a project."""
        if self.store is None or self.dataset is None:
            return 0
        rels = [self.store.rel_path(pair.image) for pair in self.dataset.pairs]
        try:
            rel = self.store.resume_image(rels)
        except FloodLabelError:
            return 0
        return rels.index(rel) if rel is not None else 0

    def remember(self, row: int) -> None:
        """The user is on dataset row `row` (selected it, edits or accepts it): the project reopens there. Written
        when it changes (the window's own opening selection is not remembered)."""
        if self.store is None or self.dataset is None or not 0 <= row < len(self.dataset.pairs):
            return
        rel = self.store.rel_path(self.dataset.pairs[row].image)
        if rel != self.remembered:
            self.remembered = rel
            self.store.remember(rel)

    def flush(self) -> None:
        """Queue the pending autosave now (before another image loads)."""
        if self.store is not None:
            self.store.flush()

    def annotation_changed(self) -> None:
        """After every annotation change: the in-progress autosave of the current image."""
        ann, item = self.controller.annotation, self.controller.item
        if self.store is not None and ann is not None and item is not None and ann.version > 0:
            self.remember(self.controller.row)
            # an edit after an accept: the newer work wins over its late full-resolution mask
            self.refined.forget(self.store.rel_path(item.path), self.store)
            self.store.schedule_autosave(self.store.rel_path(item.path), ann.to_dict)

    def mark_in_progress(self) -> None:
        """The current image shows "in progress" once it has work that is saved (not in a read-only window)."""
        ann, row = self.controller.annotation, self.controller.row
        if self.saving and ann is not None and ann.version > 0 and row not in self.accepted_rows:
            self.image_list.set_status(row, "in progress")

    def on_native_ready(self, *_: object) -> None:
        """The full-size mask is there: an accept that waited for it goes ahead, on the image it was made on only."""
        if self.waiting is not None and self.waiting.is_on(self.controller, self.store):
            self.accept_mask()

    def leave_image(self) -> None:
        """The user leaves the image on screen (another image or folder, closing): an accept still waiting for its
        mask is made and saved for this image off the UI thread (`life_cycle.late_accepts`), or the window says it
        could not be."""
        waiting, self.waiting = self.waiting, None
        c = self.controller
        if waiting is None or waiting.owner.closing is not None or not waiting.is_on(c, waiting.owner):
            return
        rel = waiting.owner.rel_path(waiting.item.path)
        if self.late.finish(waiting, c):
            self.status_bar.showMessage(f"Saving {rel} (accepted before its mask was ready) …", 4000)
        else:
            self.notice.show_notice("late-accept", f"The accept of {rel} was not saved: its mask was not ready when "
                                                   "you left the image. Open it and press Enter again.")

    def finish_pending(self) -> None:
        """Before the window closes (its workers still running): an accept waiting for its mask is made for its
        image, and the full-resolution masks of maps accepted during their refine are waited for (at most
        PENDING_WAIT_S, the UI alive) and saved; those not in by then keep their view-level accept, and the window
        says so."""
        self.leave_image()
        pending = self.refined.pending + self.late.pending
        if pending:
            self.status_bar.showMessage(f"Saving the full-resolution mask of {', '.join(pending)} before closing …")
            wait_with_ui(lambda: not self.refined.pending and not self.late.pending, PENDING_WAIT_S)
        for link in {id(o): o for o in [self.store, *self.opener.closing] if o is not None}.values():
            left = self._owed(link)
            if left:
                self._give_up(link, left)

    def may_close(self) -> bool:
        """Before the window closes: write what is queued; if edits failed to save (a full disk) and would be lost,
        ask, and False when the user chose to stay. Nothing is asked when a quit signal closes the window."""
        from PySide6.QtWidgets import QMessageBox

        from floodlabel.gui import quit_signals

        if self.store is None or self.store.read_only:
            return True
        self.store.flush()
        wait_with_ui(self.store.when_idle().is_set, 10.0)  # the UI stays alive while queued writes land
        failed = self.store.failed_saves()
        if not failed or quit_signals.closing_on_signal:
            return True
        names = ", ".join(failed[:5]) + (" …" if len(failed) > 5 else "")
        answer = QMessageBox.warning(
            self.window, "Edits not saved",
            f"The edits of {len(failed)} image(s) could not be saved ({names}): see the notice above the image. "
            "Free some disk space and press Enter on each to save it, or close and lose them.",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    def close(self) -> None:
        """Stop polling, let a recovery finish and close every project of this window, waiting (bounded, the UI
        alive) until they are closed: the queued writes land (an accepted mask is on disk before the window goes),
        then the WAL checkpoint, and the writer lock is released last."""
        self.lock_timer.stop()
        if self.recovery_call is not None:
            self.recovery_call.join(30.0)
        self._opening = None  # a project still opening is closed as soon as it is open
        wait_with_ui(lambda: not self.opener.opening, 30.0)
        link, self.store = self.store, None
        if link is not None:
            self._close_link(link)
        if not self.opener.wait_closed():
            print("floodlabel: the project did not finish closing in time; its accepted masks are on disk and the "
                  "database replays its journal at the next open", file=sys.stderr)

    # ------------------------------------------------------------------------------------------------ helpers

    def _project_dir_for(self, root: Path) -> Path | None:
        if self.requested_project is not None:
            return Path(self.requested_project)
        if Path(root).resolve() == sample_dataset_dir().resolve():
            return data_dir() / "projects" / "bundled-sample"  # never write into the installed package
        return None

    def _store_off(self, label: str) -> None:
        self.project_label.setText(label)
        self.accept_action.setEnabled(False)
        self.export_action.setEnabled(False)

    def _offer_recovery(self) -> None:
        """Accepted masks the database does not list (it was damaged, emptied or moved away, or the app stopped
        between a mask and its row): kept on disk, and offered back."""
        assert self.store is not None
        orphans = self.store.orphans
        if not orphans:
            return
        why = ("the project database was missing or empty" if self.store.created
               else "the project database does not list them (it was damaged, or the app stopped mid-accept)")
        self.notice.show_notice(
            "orphans", f"{len(orphans)} accepted mask(s) in {self.store.masks_dir} are not in this project: "
                       f"{why}. They are kept.", "Recover", self._recover_orphans)

    def _recover_orphans(self) -> None:
        if self.store is None or self.dataset is None:
            return
        self.store.recover([self.store.rel_path(pair.image) for pair in self.dataset.pairs])

    def _on_recovered(self, restored: list[str]) -> None:
        self.show_statuses()
        left = len(self.store.orphans) if self.store is not None else 0
        kept = f"; {left} could not be matched to an image and are kept in the masks folder" if left else ""
        self.notice.show_notice("recovered", f"Recovered {len(restored)} accepted mask(s){kept}.")
        self._reload_if_untouched()

    def _reload_if_untouched(self) -> None:
        """Show the current image again (with its recovered mask) unless the user has started on it."""
        c = self.controller
        if c.row >= 0 and (c.annotation is None or c.annotation.version == 0):
            c.select(c.row)

    def _recover_damaged(self, root: Path, project: Path | None) -> None:
        """Move the unreadable database aside and rebuild the project from the masks (a worker; then reopen)."""
        from floodlabel.core.store.recovery import recover_project

        rels = [relative_image_path(pair.image, root) for pair in self.dataset.pairs] if self.dataset else None
        self.recovery_call = BackgroundCall(lambda: recover_project(root, project, rels))
        self.recovery_call.succeeded.connect(self._on_damaged_recovered)
        self.recovery_call.failed.connect(lambda message: self.notice.show_notice(
            "damaged", f"Recovery failed: {message}"))
        self.recovery_call.start()

    def _on_damaged_recovered(self, report) -> None:
        if self.dataset is None:
            return
        self.open_store(self.dataset, wait=True)  # the rebuilt project, at once (the user asked for it)
        self.show_statuses()
        self.notice.show_notice("recovered", " ".join(report.lines()))
        self._reload_if_untouched()

    def _try_writable(self) -> None:
        if self.store is not None and self.store.read_only:
            self.store.try_writable()
        else:
            self.lock_timer.stop()

    def _on_writable(self) -> None:
        """The other window closed: this one saves from now on."""
        self.lock_timer.stop()
        if self.store is None:
            return
        self.accept_action.setEnabled(True)
        self.show_statuses()
        self.notice.show_notice("writable", "The other window closed this project: this window saves "
                                            "your work now.")
        self._offer_recovery()

    def _update_project_label(self, statuses=None) -> None:
        if self.store is None or self.dataset is None:
            return
        statuses = statuses if statuses is not None else self.store.statuses()
        accepted = sum(1 for s in statuses.values() if str(s) == "accepted")
        proposed = sum(1 for s in statuses.values() if str(s) == "proposed")
        mode = " (read-only)" if self.store.read_only else ""
        waiting = f" · {proposed} proposed to review" if proposed else ""
        self.project_label.setText(f"Accepted {accepted} / {len(self.dataset.pairs)}{waiting}   ·   "
                                   f"Project: {self.store.project_dir}{mode}")

    def _on_save_failed(self, message: str) -> None:
        """A write failed (disk full, a lost mount): a notice that stays until dismissed (the next image's load would
        hide the message line), naming the images whose edits live only in this window now."""
        unsaved = self.store.unsaved() if self.store is not None else []
        kept = (f" Not saved: {', '.join(unsaved[:3])}{' …' if len(unsaved) > 3 else ''}; the edits are kept in this "
                "window until it closes: open the image and press Enter to save it again.") if unsaved else ""
        self.notice.show_notice("save-failed", f"{message}.{kept}")

    def _on_accepted(self, rel: str, record) -> None:
        if self.dataset is None or self.store is None:
            return
        row = self.rows_by_rel.get(rel)
        if row is not None:
            self.image_list.set_status(row, "accepted")
            self.accepted_rows.add(row)
        self.status_bar.showMessage(f"Accepted {rel}", 3000)
        if not self.store.unsaved():
            self.notice.dismiss("save-failed")  # every edit that failed to save is on disk now
        self._update_project_label()
        self.finetune_panel.refresh()

    def _next_unaccepted(self, row: int) -> int | None:
        order = self.image_list.visible_rows()
        if row not in order:
            return None
        for r in order[order.index(row) + 1:] + order[:order.index(row)]:
            if r not in self.accepted_rows:
                return r
        return None
