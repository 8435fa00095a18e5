"""The annotation window's project side: the store behind Accept, autosave and restore, statuses, the accepted
counter, export. A mixin of AnnotationWindow (it uses the window's widgets and controller)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from floodlabel.core.errors import FloodLabelError
from floodlabel.core.paths import data_dir
from floodlabel.gui.app import sample_dataset_dir
from floodlabel.gui.store_link import StoreLink


class ProjectActions:
    """Accept (Enter), export and the project store's link to the image list and status bar."""

    def accept_mask(self) -> None:
        """Enter: store the mask that would be saved (native size) with its prompts, then the next image."""
        c = self.controller
        if self.store is None or c.item is None or c.annotation is None:
            return
        if self.store.read_only:
            self.show_message(f"This project is read-only: {self.store.store.read_only_reason}")
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
        from floodlabel.gui.export_dialog import ExportDialog

        self.store.flush()
        self.store.wait_idle()
        ExportDialog(self.store.store, parent=self).open()

    def _open_store(self, root: Path) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.controller.restore_fn = None
        project = self._requested_project
        if project is None and Path(root).resolve() == sample_dataset_dir().resolve():
            project = data_dir() / "projects" / "bundled-sample"  # never write into the installed package
        try:
            self.store = StoreLink.open(root, project, parent=self)
        except FloodLabelError as exc:
            self.show_message(f"Masks cannot be saved for this folder: {exc}")
            self.project_label.setText("No project: accepting is off")
            self.accept_action.setEnabled(False)
            self.export_action.setEnabled(False)
            return
        self.store.accepted.connect(self._on_accepted)
        self.store.failed.connect(self.show_message)
        self.controller.restore_fn = self.store.restore
        self.accept_action.setEnabled(not self.store.read_only)
        self.export_action.setEnabled(True)
        if self.store.read_only:
            self.show_message(f"Read-only: {self.store.store.read_only_reason}")

    def _show_statuses(self) -> None:
        if self.store is None or self.dataset is None:
            return
        statuses = self.store.statuses()
        self._accepted_rows = set()
        for row, pair in enumerate(self.dataset.pairs):
            status = statuses.get(self.store.rel_path(pair.image))
            if status is not None:
                self.image_list.set_status(row, str(status))
                if str(status) == "accepted":
                    self._accepted_rows.add(row)
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
        for row, pair in enumerate(self.dataset.pairs):
            if self.store.rel_path(pair.image) == rel:
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
