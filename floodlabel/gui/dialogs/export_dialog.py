"""The export dialog: write a project's accepted masks (PNG, COCO JSON) into a folder, off the UI thread.

The whole API: `ExportDialog(store, parent=window).exec()` (or `.open()`). The dataset folder is `store.data_root`;
the default export folder is `<DATA>/floodlabel-export`.

`core.export.export_project` runs in a daemon thread (see `gui.background`): its progress, result and error reach
the dialog through the signals of a parentless relay QObject, queued onto the UI thread. Cancel sets the export's
cancel event; it stops before the next file, and every file written so far is complete. Closing the dialog while an
export runs cancels it and closes once the export has stopped. Errors (ExportError, StoreError) are shown as one
line and the dialog stays open.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from floodlabel.core.export.project_export import COCO_NAME, MASK_DIR_NAME, ExportCancelled, ExportResult, export_project
from floodlabel.core.store.project_store import ProjectStore, Status
from floodlabel.gui.workers.background import one_line_error
from floodlabel.gui.workers.daemon_thread import DaemonThread

DEFAULT_FOLDER_NAME = "floodlabel-export"
OVERWRITE_TEXT = "Overwrite files the export did not write"


class ExportDialog(QDialog):
    """Choose a folder and formats, export the accepted masks of `store` with progress, show what was written."""

    def __init__(self, store: ProjectStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._task: _ExportTask | None = None
        self._close_when_stopped = False
        self.last_result: ExportResult | None = None
        self.setWindowTitle("Export accepted masks")
        self.setMinimumWidth(560)

        self.count_label = QLabel()
        self.count_label.setWordWrap(True)

        self.folder_edit = QLineEdit(str(Path(store.data_root) / DEFAULT_FOLDER_NAME))
        self.folder_edit.setToolTip("The export writes into this folder and nowhere else (created if needed)")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Export folder:"))
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)

        self.png_check = QCheckBox(f"PNG masks ({MASK_DIR_NAME}/<image name>.png, 0/255, the image's native size)")
        self.coco_check = QCheckBox(f"COCO JSON ({COCO_NAME}, RLE segmentations, category \"water\")")
        for check in (self.png_check, self.coco_check):
            check.setChecked(True)
            check.toggled.connect(self._update_buttons)
        formats = QGroupBox("Formats")
        formats_layout = QVBoxLayout(formats)
        formats_layout.addWidget(self.png_check)
        formats_layout.addWidget(self.coco_check)

        self.overwrite_check = QCheckBox(OVERWRITE_TEXT)
        self.overwrite_check.setToolTip("Off: files in the folder that an earlier FloodLabel export did not write "
                                        "are never replaced, and the export is refused instead")

        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m masks")
        self.progress_bar.hide()

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label.setOpenExternalLinks(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.status_label.hide()

        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(120)
        self.details.hide()

        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button = self.buttons.addButton("Cancel export", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self.cancel_export)
        self.close_button.clicked.connect(self.reject)
        self.cancel_button.hide()

        layout = QVBoxLayout(self)
        layout.addWidget(self.count_label)
        layout.addLayout(folder_row)
        layout.addWidget(formats)
        layout.addWidget(self.overwrite_check)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.details)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

        self.accepted_count = self._count_accepted()
        self._update_buttons()

    # ------------------------------------------------------------------------------------------------ state

    def is_running(self) -> bool:
        return self._task is not None

    def formats(self) -> list[str]:
        return [name for name, check in (("png", self.png_check), ("coco", self.coco_check)) if check.isChecked()]

    def _count_accepted(self) -> int:
        try:
            accepted = self.store.counts()[Status.ACCEPTED]
        except Exception as exc:  # noqa: BLE001 - a closed or damaged store: say so, export stays off
            self.count_label.setText(f"Cannot read the project: {html.escape(one_line_error(exc))}")
            return 0
        if accepted:
            self.count_label.setText(f"{accepted} accepted image(s) of {self.store.data_root} will be exported.")
        else:
            self.count_label.setText("No image is accepted yet: accept masks in the window first (Enter).")
        return accepted

    @Slot()
    def _update_buttons(self) -> None:
        running = self.is_running()
        self.export_button.setEnabled(not running and self.accepted_count > 0 and bool(self.formats()))
        self.cancel_button.setVisible(running)
        for widget in (self.folder_edit, self.browse_button, self.png_check, self.coco_check, self.overwrite_check):
            widget.setEnabled(not running)

    @Slot()
    def _browse(self) -> None:
        start = self.folder_edit.text().strip() or str(self.store.data_root)
        while start and not Path(start).is_dir() and Path(start).parent != Path(start):
            start = str(Path(start).parent)  # the default folder may not exist yet: open its parent
        chosen = QFileDialog.getExistingDirectory(self, "Export folder", start)
        if chosen:
            self.folder_edit.setText(chosen)

    # ------------------------------------------------------------------------------------------------ export

    @Slot()
    def start_export(self) -> None:
        """Start exporting into the chosen folder (in a daemon thread). Does nothing while an export runs."""
        folder = self.folder_edit.text().strip()
        if self.is_running() or not self.export_button.isEnabled():
            return
        if not folder:
            self._show_error("choose an export folder")
            return
        self.status_label.hide()
        self.details.clear()
        self.details.hide()
        self.progress_bar.setRange(0, max(self.accepted_count, 1))
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        task = _ExportTask(self.store, Path(folder).expanduser(), self.formats(), self.overwrite_check.isChecked())
        task.relay.progress.connect(self._on_progress)
        task.relay.finished.connect(self._on_finished)
        task.relay.failed.connect(self._on_failed)
        task.relay.cancelled.connect(self._on_cancelled)
        self._task = task
        self._update_buttons()
        task.start()

    @Slot()
    def cancel_export(self) -> None:
        """Ask a running export to stop before its next file."""
        if self._task is not None:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self._show_status("Cancelling…")

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)

    @Slot(object)
    def _on_finished(self, result: ExportResult) -> None:
        self._stopped()
        self.progress_bar.setValue(self.progress_bar.maximum())
        self.last_result = result
        link = f'<a href="{QUrl.fromLocalFile(str(result.out_dir)).toString()}">{html.escape(str(result.out_dir))}</a>'
        parts = [f"Exported {result.exported} mask(s) to {link}"]
        wrote = []
        if result.masks:
            wrote.append(f"{len(result.masks)} PNG mask(s) in {MASK_DIR_NAME}/")
        if result.coco_path is not None:
            wrote.append(COCO_NAME)
        if result.image_link is not None:
            wrote.append("an Image link to the photos")
        if wrote:
            parts.append("Wrote " + ", ".join(wrote) + ".")
        if result.removed:
            parts.append(f"Removed {len(result.removed)} mask(s) of an earlier export whose image is no longer "
                         "accepted.")
        if result.skipped:
            parts.append(f'<span style="color:#b00000">Skipped {len(result.skipped)} accepted image(s)</span> '
                         "(reasons below).")
        self._show_status("<br>".join(parts), rich=True)
        lines = [f"skipped {rel}: {reason}" for rel, reason in result.skipped]
        lines += [f"note: {note}" for note in result.notes]
        if lines:
            self.details.setPlainText("\n".join(lines))
            self.details.show()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._stopped()
        self.progress_bar.hide()
        self._show_error(message.replace("pass --overwrite", f"tick “{OVERWRITE_TEXT}”"))

    @Slot(str)
    def _on_cancelled(self, message: str) -> None:
        self._stopped()
        self._show_status(html.escape(message[:1].upper() + message[1:]) + ". Export again to finish.", rich=True)

    def _stopped(self) -> None:
        self._task = None
        self.cancel_button.setEnabled(True)
        self._update_buttons()
        if self._close_when_stopped:
            self._close_when_stopped = False
            super().done(QDialog.DialogCode.Rejected)

    def _show_error(self, message: str) -> None:
        self._show_status(f'<span style="color:#b00000">Export failed: {html.escape(message)}</span>', rich=True)

    def _show_status(self, text: str, rich: bool = False) -> None:
        self.status_label.setText(text if rich else html.escape(text))
        self.status_label.show()

    # ------------------------------------------------------------------------------------------------ closing

    def done(self, result: int) -> None:
        """Closing (Close, Escape, the window's close button) while an export runs cancels it and closes when the
        export has stopped, so nothing is left writing behind a closed dialog."""
        if self._task is not None:
            self._close_when_stopped = True
            self.cancel_export()
            return
        super().done(result)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        if self._task is not None:
            self._close_when_stopped = True
            self.cancel_export()
            event.ignore()
            return
        super().closeEvent(event)


# ----------------------------------------------------------------------------------------------------- worker


class _ExportRelay(QObject):
    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)


class _ExportTask:
    """Runs `export_project` once in a daemon thread; the thread keeps this task and its parentless relay alive, so
    it never emits on a deleted object. Progress is emitted at most once per whole percent."""

    def __init__(self, store: ProjectStore, out_dir: Path, formats: list[str], overwrite: bool) -> None:
        self.relay = _ExportRelay()
        self._args = (store, out_dir, formats, overwrite)
        self._cancel = threading.Event()
        self._last_step = -1

    def start(self) -> None:
        DaemonThread(self._run, "floodlabel-export").start()

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self) -> None:
        store, out_dir, formats, overwrite = self._args
        try:
            result = export_project(store, out_dir, formats=formats, overwrite=overwrite, progress=self._on_progress,
                                    cancel=self._cancel)
        except ExportCancelled as exc:
            self.relay.cancelled.emit(one_line_error(exc))
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the dialog
            self.relay.failed.emit(one_line_error(exc))
        else:
            self.relay.finished.emit(result)

    def _on_progress(self, done: int, total: int) -> None:
        step = done * 100 // total if total else 0
        if step != self._last_step or done == total:
            self._last_step = step
            self.relay.progress.emit(done, total)
