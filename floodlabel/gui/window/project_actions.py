"""The annotation window's project side: the store behind Accept, autosave and restore, statuses, the accepted
counter, export. A mixin of AnnotationWindow (it uses the window's widgets and controller)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from floodlabel.core.common.errors import DamagedProjectError, FloodLabelError
from floodlabel.core.common.paths import data_dir
from floodlabel.core.store.project_store import relative_image_path
from floodlabel.gui.resources import sample_dataset_dir
from floodlabel.gui.workers.background import BackgroundCall
from floodlabel.gui.window.store_link import StoreLink


class ProjectActions:
    """Accept (Enter), export and the project store's link to the image list and status bar."""

    def accept_mask(self) -> None:
        """Enter: store the mask that would be saved (native size) with its prompts, then the next image."""
        c = self.controller
        if self.store is None or c.item is None or c.annotation is None:
            return
        if self.store.read_only:
            self.project_notice.show_notice("read-only", f"This project is read-only: "
                                                         f"{self.store.store.read_only_reason}")
            return
        if not c.native_ready():
            self._accept_waiting = True  # the full-size mask is on its way from the decoder: accept when it lands
            self.statusBar().showMessage("Preparing the full-size mask …")
            return
        self._accept_waiting = False
        mask = c.native_mask.copy() if c.native_mask is not None else np.zeros(c.item.original_size, bool)
        metrics = c.metrics.as_dict() if c.metrics is not None else None
        rel = self.store.rel_path(c.item.path)
        self.store.accept(rel, mask, c.annotation.to_dict(), c.session.model_id if c.session else None, metrics)
        self.statusBar().showMessage(f"Saving {rel} …", 2000)
        nxt = self._next_unaccepted(c.row)
        if nxt is not None:
            self.select_image(nxt)

    def export_masks(self) -> None:
        if self.store is None:
            return
        from floodlabel.gui.dialogs.export_dialog import ExportDialog

        self.store.flush()
        self.store.wait_idle()
        ExportDialog(self.store.store, parent=self).open()

    def _open_store(self, root: Path) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self._lock_timer.stop()
        self.project_notice.dismiss()
        self.controller.restore_fn = None
        project = self._project_dir_for(root)
        try:
            self.store = StoreLink.open(root, project, parent=self)
        except DamagedProjectError as exc:
            self._store_off("No project: its database cannot be read")
            detail = f" ({exc.detail})" if exc.detail else ""
            self.project_notice.show_notice(
                "damaged", f"The project database {exc.path} cannot be read{detail}. Accepting is off and nothing "
                           "was changed. Your accepted masks are kept: Recover masks moves the damaged database "
                           "aside and rebuilds the project from them.", "Recover masks",
                lambda: self._recover_damaged(root, project))
            return
        except FloodLabelError as exc:
            self._store_off("No project: accepting is off")
            self.project_notice.show_notice("store", f"Masks cannot be saved for this folder: {exc}")
            return
        self.store.accepted.connect(self._on_accepted)
        self.store.failed.connect(self.show_message)
        self.store.recovered.connect(self._on_recovered)
        self.store.writable.connect(self._on_writable)
        self.controller.restore_fn = self.store.restore
        self.accept_action.setEnabled(not self.store.read_only)
        self.export_action.setEnabled(True)
        if self.store.read_only:
            self.project_notice.show_notice(
                "read-only", f"Read-only: {self.store.store.read_only_reason}. Nothing you do in this window is "
                             "saved.")
            self._lock_timer.start()
        else:
            self._offer_recovery()

    def _project_dir_for(self, root: Path) -> Path | None:
        if self._requested_project is not None:
            return Path(self._requested_project)
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
        orphans = self.store.store.orphans
        if not orphans:
            return
        why = ("the project database was missing or empty" if self.store.store.created
               else "the project database does not list them (it was damaged, or the app stopped mid-accept)")
        self.project_notice.show_notice(
            "orphans", f"{len(orphans)} accepted mask(s) in {self.store.store.masks_dir} are not in this project: "
                       f"{why}. They are kept.", "Recover", self._recover_orphans)

    def _recover_orphans(self) -> None:
        if self.store is None or self.dataset is None:
            return
        self.store.recover([self.store.rel_path(pair.image) for pair in self.dataset.pairs])

    def _on_recovered(self, restored: list[str]) -> None:
        self._show_statuses()
        left = len(self.store.store.orphans) if self.store is not None else 0
        kept = f"; {left} could not be matched to an image and are kept in the masks folder" if left else ""
        self.project_notice.show_notice("recovered", f"Recovered {len(restored)} accepted mask(s){kept}.")
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
        self._recovery_call = BackgroundCall(lambda: recover_project(root, project, rels))
        self._recovery_call.succeeded.connect(self._on_damaged_recovered)
        self._recovery_call.failed.connect(lambda message: self.project_notice.show_notice(
            "damaged", f"Recovery failed: {message}"))
        self._recovery_call.start()

    def _on_damaged_recovered(self, report) -> None:
        if self.dataset is None:
            return
        self._open_store(self.dataset.root)
        self._show_statuses()
        self.project_notice.show_notice("recovered", " ".join(report.lines()))
        self._reload_if_untouched()

    def _try_writable(self) -> None:
        if self.store is not None and self.store.read_only:
            self.store.try_writable()
        else:
            self._lock_timer.stop()

    def _on_writable(self) -> None:
        """The other window closed: this one saves from now on."""
        self._lock_timer.stop()
        if self.store is None:
            return
        self.accept_action.setEnabled(True)
        self._show_statuses()
        self.project_notice.show_notice("writable", "The other window closed this project: this window saves "
                                                    "your work now.")
        self._offer_recovery()

    def _show_statuses(self) -> None:
        if self.store is None or self.dataset is None:
            return
        statuses = self.store.statuses()
        self._rows_by_rel = {self.store.rel_path(pair.image): row for row, pair in enumerate(self.dataset.pairs)}
        shown = {row: str(statuses[rel]) for rel, row in self._rows_by_rel.items() if rel in statuses}
        self.image_list.set_statuses(shown)
        self._accepted_rows = {row for row, status in shown.items() if status == "accepted"}
        self._update_project_label(statuses)

    def _update_project_label(self, statuses=None) -> None:
        if self.store is None or self.dataset is None:
            return
        statuses = statuses if statuses is not None else self.store.statuses()
        accepted = sum(1 for s in statuses.values() if str(s) == "accepted")
        mode = " (read-only)" if self.store.read_only else ""
        self.project_label.setText(f"Accepted {accepted} / {len(self.dataset.pairs)}   ·   "
                                   f"Project: {self.store.store.project_dir}{mode}")

    def _on_accepted(self, rel: str, record) -> None:
        if self.dataset is None or self.store is None:
            return
        row = self._rows_by_rel.get(rel)
        if row is not None:
            self.image_list.set_status(row, "accepted")
            self._accepted_rows.add(row)
        self.statusBar().showMessage(f"Accepted {rel}", 3000)
        self._update_project_label()
        self.finetune_panel.refresh()

    def _on_native_ready(self, *_: object) -> None:
        if self._accept_waiting:
            self.accept_mask()

    def _next_unaccepted(self, row: int) -> int | None:
        order = self.image_list.visible_rows()
        if row not in order:
            return None
        for r in order[order.index(row) + 1:] + order[:order.index(row)]:
            if r not in self._accepted_rows:
                return r
        return None
