"""The "Models" panel: SAM and SAM 2.1 checkpoints on disk with their size and the embedding time measured here, the
backend the app will use, the model recommended for this machine, how to get a checkpoint, and a download."""

from __future__ import annotations

import html
import os

from PySide6.QtCore import QLocale, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from floodlabel.core.models.model_speed import reference_seconds
from floodlabel.core.models.registry import (BASE_URL_ENV, CLASSIC, FAMILIES, MODELS, base_url, download_url,
                                             list_models)
from floodlabel.core.common.paths import models_dir
from floodlabel.gui.panels import model_status
from floodlabel.gui.panels.model_status import (BackendChoice, MachineFacts, choose_backend, seconds_short,
                                                seconds_text)
from floodlabel.gui.workers.background import BackgroundCall, DownloadTask

COLUMNS = ("Model", "Size", "Here")
NAME, SIZE, HERE = range(len(COLUMNS))
"""Columns of the table; each family's models follow a row naming the family (spanning the table, not selectable).
Here: 'not downloaded', 'downloaded', or the embedding time measured on this machine ('about 0.8 s / image')."""


class ModelPanel(QGroupBox):
    """Lists every registered model (SAM v1 and SAM 2.1), says which backend is used and which model suits this
    machine, and downloads the selected model (the recommended one until another row is picked) with progress and
    cancel.

    `requested` is the `--model` value (a name or a checkpoint path) or None. `target` is the model the download
    button fetches; `facts` the MachineFacts (first a torch-free guess, then measured in the background).
    Emits `backend_changed(BackendChoice)` when a refresh (e.g. after a download) changes what will be used, and
    `recommendation_changed(name, reason)` when the recommended download is known or changes.
    `task` is the running DownloadTask, or None. The measured facts are asked for each time the panel is shown.
    """

    backend_changed = Signal(object)
    recommendation_changed = Signal(str, str)

    def __init__(self, requested: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)  # the dock says "Models"
        self.requested = requested
        self.choice: BackendChoice = choose_backend(requested)
        self.task: DownloadTask | None = None
        gpu = model_status.first_guess_gpu()
        self.facts = MachineFacts(gpu, model_status.recommended(gpu))
        self.target = self.facts.recommended[0]
        self.facts_call: BackgroundCall | None = None

        self.backend_label = _rich_label()
        self.warning_label = _rich_label(style="color: #b35900;")
        self.recommend_label = _rich_label()
        self.table = QTableWidget(0, len(COLUMNS))
        self.detail_label = _rich_label()
        self.howto_label = _rich_label()
        self.howto_label.setOpenExternalLinks(True)
        self.download_button = QPushButton()
        self.cancel_button = QPushButton("Cancel")
        self.progress_bar = QProgressBar()
        self.status_label = _rich_label()

        self._build()
        self.download_button.clicked.connect(self._on_download_clicked)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.refresh()  # facts: when first shown (importing torch costs about 2 s and 700 MB, not for classic alone)

    # ------------------------------------------------------------------------------------------------ actions

    def refresh(self) -> None:
        """Re-read the models folder: table, backend line, download button. Emits backend_changed on a change."""
        choice = choose_backend(self.requested)
        changed, self.choice = choice != self.choice, choice
        rows = [r for r in list_models() if r.name != CLASSIC]
        self._fill_table(rows)
        self._fit_table_height()

        self.backend_label.setText(f"Backend: <b>{html.escape(self.choice.label)}</b>")
        self.warning_label.setText(html.escape(self.choice.warning or ""))
        self.warning_label.setVisible(bool(self.choice.warning))
        self.recommend_label.setText(_recommend_html(*self.facts.recommended))
        self.detail_label.setText(self._detail_html())
        self.howto_label.setText(_howto_html(self.choice, self.target))

        downloading = self.task is not None
        have = any(r.name == self.target and r.downloaded for r in rows)
        if downloading:
            self.download_button.setText(f"Downloading {self.task.name} …")
        else:
            self.download_button.setText(f"{self.target} downloaded" if have else
                                         f"Download {self.target} ({_size(MODELS[self.target].size_bytes)})")
        self.download_button.setEnabled(not have and not downloading)
        self.cancel_button.setEnabled(downloading)
        self.progress_bar.setVisible(downloading)
        if changed:
            self.backend_changed.emit(self.choice)

    def select_model(self, name: str) -> None:
        """Make registered model `name` the download target (its row selected)."""
        if name not in MODELS:
            raise KeyError(name)
        self.target = name
        self.refresh()

    def refresh_facts(self) -> None:
        """Ask, off the UI thread, whether a GPU is used here and how long each model's embedding took here."""
        if self.facts_call is not None and self.facts_call.is_running():
            return
        self.facts_call = BackgroundCall(model_status.machine_facts)
        self.facts_call.succeeded.connect(self._on_facts)
        self.facts_call.start()

    def start_download(self, name: str | None = None) -> None:
        """Start downloading `name` (default: the target) in the background (no-op while a download runs)."""
        if self.task is not None:
            return
        if name is not None:
            self.target = name
        name = self.target
        self.task = DownloadTask(name)
        self.task.progress.connect(self._on_progress)
        self.task.finished.connect(self._on_finished)
        self.task.failed.connect(self._on_failed)
        self.task.cancelled.connect(self._on_cancelled)
        self.progress_bar.setRange(0, 0)  # busy until the server says how big the file is
        self._set_status(f"Downloading {name} from {html.escape(download_url(name))} …")
        self.refresh()
        self.task.start()

    def cancel_download(self) -> None:
        """Stop the running download; the bytes received so far are kept and the next download resumes."""
        if self.task is not None:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling …")

    # ------------------------------------------------------------------------------------------------ slots

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API): a model may have run since: new speeds
        super().showEvent(event)
        QTimer.singleShot(0, self._refresh_facts_if_visible)  # not for the moment a window builds its docks

    def _refresh_facts_if_visible(self) -> None:
        if self.isVisible() and not self.visibleRegion().isEmpty():  # a dock tab behind another has no region
            self.refresh_facts()

    def _on_download_clicked(self) -> None:
        self.start_download()

    def _on_facts(self, facts: MachineFacts) -> None:
        old, self.facts = self.facts.recommended, facts
        if self.target == old[0] and facts.recommended != old:
            self.target = facts.recommended[0]  # the user picked nothing else: follow the real answer
        self.refresh()
        if facts.recommended != old:
            self.recommendation_changed.emit(*facts.recommended)

    def _on_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) == 1:
            name = self.table.item(rows.pop(), NAME).data(Qt.ItemDataRole.UserRole)
            if name and name != self.target:
                self.target = name
                self.refresh()

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
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for j in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(j, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.progress_bar.setTextVisible(True)
        self.status_label.setVisible(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.backend_label)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.recommend_label)
        layout.addLayout(buttons)  # the action first: a 768-px screen shows little of the dock
        layout.addWidget(self.progress_bar)  # a line of its own: "120 MB of 156 MB (77%)" is read whole
        layout.addWidget(self.status_label)
        layout.addWidget(self.table)
        layout.addWidget(self.detail_label)
        layout.addWidget(self.howto_label)
        layout.addStretch(1)

    def _fill_table(self, rows) -> None:
        recommended = self.facts.recommended[0]
        self.table.blockSignals(True)
        self.table.clearSpans()
        families = list(dict.fromkeys(r.family for r in rows))
        self.table.setRowCount(len(rows) + len(families))
        i = 0
        for family in families:
            head = QTableWidgetItem(FAMILIES.get(family, family))
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = QFont(head.font())
            font.setBold(True)
            head.setFont(font)
            head.setBackground(self.palette().alternateBase())
            self.table.setItem(i, 0, head)
            self.table.setSpan(i, 0, 1, len(COLUMNS))
            i += 1
            for row in (r for r in rows if r.family == family):
                seconds = self.facts.seconds.get(row.name)
                reference = reference_seconds(row.name)  # SAM 3: measured on the 2-core dev VM
                here = (f"{seconds_short(seconds)} / image" if seconds is not None else
                        f"{seconds_short(reference[0])} / image*" if reference is not None else
                        "downloaded" if row.downloaded else "not downloaded")
                tips = (row.description + (f"\n{row.path}" if row.path is not None else ""), row.description,
                        seconds_text(seconds) or (f"* {reference[1]}" if reference is not None else
                                                  "not run on this machine yet: measured at its first image"
                                                  if row.downloaded else "not downloaded"))
                for j, text in enumerate((row.name, _size(row.size_bytes), here)):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, row.name)
                    item.setToolTip(tips[j])
                    if j != NAME:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    if row.name == recommended:
                        font = QFont(item.font())
                        font.setBold(True)
                        item.setFont(font)
                    self.table.setItem(i, j, item)
                if row.name == self.target:
                    self.table.selectRow(i)
                i += 1
        self.table.blockSignals(False)

    def _detail_html(self) -> str:
        spec = MODELS[self.target]
        reference = reference_seconds(self.target)
        speed = seconds_text(self.facts.seconds.get(self.target)) or (
            f"not run on this machine yet; about {seconds_short(reference[0])} per image {reference[1]}"
            if reference is not None else "not run on this machine yet")
        return f"<b>{html.escape(spec.name)}</b>: {html.escape(spec.description)}; {html.escape(speed)}."

    def _fit_table_height(self) -> None:
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(i) for i in range(self.table.rowCount()))
        bar = self.table.horizontalScrollBar()
        self.table.setFixedHeight(height + (bar.sizeHint().height() if bar.maximum() > 0 else 0))

    def _set_status(self, html_text: str, colour: str | None = None) -> None:
        self.status_label.setStyleSheet(f"color: {colour};" if colour else "")
        self.status_label.setText(html_text)
        self.status_label.setVisible(True)


# ----------------------------------------------------------------------------------------------------- helpers


def _recommend_html(name: str, reason: str) -> str:
    return f"Recommended here: <b>{html.escape(name)}</b> ({html.escape(reason)})."


def _howto_html(choice: BackendChoice, name: str) -> str:
    url = download_url(name)
    lead = ("No SAM checkpoint is in use, so clicks and boxes are segmented by the offline classic backend "
            "(OpenCV GrabCut). SAM gives much better masks." if not choice.is_sam
            else "Other checkpoints can be added the same way.")
    mirror = base_url() if os.environ.get(BASE_URL_ENV, "").strip() else None
    source = (f"Downloads come from the mirror <code>{html.escape(mirror)}</code> ({BASE_URL_ENV})."
              if mirror else
              f"Behind a firewall, set <code>{BASE_URL_ENV}</code> to a mirror serving the same file names.")
    return (
        f"{lead} To get a checkpoint: pick its row and press <b>Download</b>, or run "
        f"<code>floodlabel models download {html.escape(name)}</code>, or fetch "
        f"<a href=\"{html.escape(url)}\">{html.escape(url)}</a> yourself and start with "
        f"<code>floodlabel gui --model /path/to/{html.escape(MODELS[name].filename)}</code>. "
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
