"""The "Model" panel: SAM checkpoints on disk, the backend the app will use, how to get a checkpoint, a download."""

from __future__ import annotations

import html
import os

from PySide6.QtCore import QLocale, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from floodlabel.core.models.registry import BASE_URL_ENV, CLASSIC, MODELS, base_url, download_url, list_models
from floodlabel.core.common.paths import models_dir
from floodlabel.gui.workers.background import DownloadTask
from floodlabel.gui.panels.model_status import BackendChoice, choose_backend

DOWNLOAD_MODEL = "vit_b"
COLUMNS = ("Model", "Size", "Downloaded", "Description")


class ModelPanel(QGroupBox):
    """Lists vit_b / vit_l / vit_h, says which backend is used and downloads vit_b with progress and cancel.

    `requested` is the `--model` value (a name or a .pth path) or None.
    Emits `backend_changed(BackendChoice)` when a refresh (e.g. after a download) changes what will be used.
    `task` is the running DownloadTask, or None.
    """

    backend_changed = Signal(object)

    def __init__(self, requested: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.requested = requested
        self.choice: BackendChoice = choose_backend(requested)
        self.task: DownloadTask | None = None

        self.backend_label = _rich_label()
        self.warning_label = _rich_label(style="color: #b35900;")
        self.table = QTableWidget(0, len(COLUMNS))
        self.howto_label = _rich_label()
        self.howto_label.setOpenExternalLinks(True)
        self.download_button = QPushButton()
        self.cancel_button = QPushButton("Cancel")
        self.progress_bar = QProgressBar()
        self.status_label = _rich_label()

        self._build()
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.refresh()

    # ------------------------------------------------------------------------------------------------ actions

    def refresh(self) -> None:
        """Re-read the models folder: table, backend line, download button. Emits backend_changed on a change."""
        choice = choose_backend(self.requested)
        changed, self.choice = choice != self.choice, choice
        rows = [r for r in list_models() if r.name != CLASSIC]
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            cells = (row.name, _size(row.size_bytes), "yes" if row.downloaded else "no", row.description)
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if row.path is not None:
                    item.setToolTip(str(row.path))
                if j in (1, 2):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(i, j, item)
        self._fit_table_height()

        self.backend_label.setText(f"Backend: <b>{html.escape(self.choice.label)}</b>")
        self.warning_label.setText(html.escape(self.choice.warning or ""))
        self.warning_label.setVisible(bool(self.choice.warning))
        self.howto_label.setText(_howto_html(self.choice))

        downloading = self.task is not None
        have = any(r.name == DOWNLOAD_MODEL and r.downloaded for r in rows)
        self.download_button.setText(f"{DOWNLOAD_MODEL} downloaded" if have else
                                     f"Download {DOWNLOAD_MODEL} ({_size(MODELS[DOWNLOAD_MODEL].size_bytes)})")
        self.download_button.setEnabled(not have and not downloading)
        self.cancel_button.setEnabled(downloading)
        self.progress_bar.setVisible(downloading)
        if changed:
            self.backend_changed.emit(self.choice)

    def start_download(self) -> None:
        """Start downloading vit_b in the background (no-op while a download runs)."""
        if self.task is not None:
            return
        self.task = DownloadTask(DOWNLOAD_MODEL)
        self.task.progress.connect(self._on_progress)
        self.task.finished.connect(self._on_finished)
        self.task.failed.connect(self._on_failed)
        self.task.cancelled.connect(self._on_cancelled)
        self.progress_bar.setRange(0, 0)  # busy until the server says how big the file is
        self._set_status(f"Downloading {DOWNLOAD_MODEL} from {html.escape(download_url(DOWNLOAD_MODEL))} …")
        self.refresh()
        self.task.start()

    def cancel_download(self) -> None:
        """Stop the running download; the bytes received so far are kept and the next download resumes."""
        if self.task is not None:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling …")

    # ------------------------------------------------------------------------------------------------ slots

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * done / total))
            self.progress_bar.setFormat(f"{_size(done)} of {_size(total)} (%p%)")
        else:
            self.progress_bar.setRange(0, 0)
            self.progress_bar.setFormat(_size(done))

    def _on_finished(self, path: str) -> None:
        self._set_status(f"Downloaded and verified: {html.escape(path)}", "#1b7f2a")
        self._finish()

    def _on_failed(self, message: str) -> None:
        fallback = "" if self.choice.is_sam else " The app keeps working with the classic backend meanwhile."
        self._set_status(f"Download failed: {html.escape(message)}.{fallback}", "#c62828")
        self._finish()

    def _on_cancelled(self) -> None:
        self._set_status("Download cancelled. The part received so far is kept: the next download resumes it.")
        self._finish()

    def _finish(self) -> None:
        self.task = None
        self.refresh()

    # ------------------------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        for j in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(j, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.progress_bar.setTextVisible(True)
        self.status_label.setVisible(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress_bar, 1)

        layout = QVBoxLayout(self)
        layout.addWidget(self.backend_label)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.table)
        layout.addWidget(self.howto_label)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _fit_table_height(self) -> None:
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(i) for i in range(self.table.rowCount()))
        self.table.setFixedHeight(height)

    def _set_status(self, html_text: str, colour: str | None = None) -> None:
        self.status_label.setStyleSheet(f"color: {colour};" if colour else "")
        self.status_label.setText(html_text)
        self.status_label.setVisible(True)


# ----------------------------------------------------------------------------------------------------- helpers


def _howto_html(choice: BackendChoice) -> str:
    url = download_url(DOWNLOAD_MODEL)
    lead = ("No SAM checkpoint is in use, so clicks and boxes are segmented by the offline classic backend "
            "(OpenCV GrabCut). SAM gives much better masks." if not choice.is_sam
            else "Other checkpoints can be added the same way.")
    mirror = base_url() if os.environ.get(BASE_URL_ENV, "").strip() else None
    source = (f"Downloads come from the mirror <code>{html.escape(mirror)}</code> ({BASE_URL_ENV})."
              if mirror else
              f"Behind a firewall, set <code>{BASE_URL_ENV}</code> to a mirror serving the same file names.")
    return (
        f"{lead} To get a checkpoint: press <b>Download {DOWNLOAD_MODEL}</b>, or run "
        f"<code>floodlabel models download {DOWNLOAD_MODEL}</code>, or fetch "
        f"<a href=\"{html.escape(url)}\">{html.escape(url)}</a> yourself and start with "
        f"<code>floodlabel gui --model /path/to/{html.escape(MODELS[DOWNLOAD_MODEL].filename)}</code>. "
        f"{source} Checkpoints are kept in <code>{html.escape(str(models_dir()))}</code>."
    )


def _size(n: int) -> str:
    return QLocale(QLocale.Language.English).formattedDataSize(n, 0 if n < 10**9 else 2,
                                                              QLocale.DataSizeFormat.DataSizeSIFormat)


def _rich_label(style: str = "") -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
    if style:
        label.setStyleSheet(style)
    return label
