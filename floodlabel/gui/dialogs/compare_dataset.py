"""Model → Compare on dataset…: the two-model evaluation of `floodlabel eval DATA --model A --model B` in the window.

The dialog runs `core.evaluation.evaluate` (the function the CLI runs; both models get the identical prompts made
from each image's ground truth) in a daemon thread (gui/background.py's pattern: a parentless relay QObject carries
progress and the result to the UI thread) with one worker process (the window stays usable), cancellable between
images. It then shows `core.eval_comparison.compare`: mean ± std per metric for A and B, Δ and Δ% (B − A), NoC@85/90,
failures (IoU < 0.5) before and after, and the per-image Δ IoU list, worst first. A double-click on an image calls
`open_image(dataset row, prompt)` with the very prompt the evaluation gave both models on that image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from floodlabel.core.data.datasets import FloodDataset
from floodlabel.core.evaluation.report import signed_cell, value_cell
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.gui.workers.background import BackgroundJob, one_line_error

PROMPT_MODES = ("point", "box", "both")
SUMMARY_COLUMNS = ("Metric", "A", "B", "Δ (B − A)", "Δ %")
DELTA_COLUMNS = ("Image", "IoU A", "IoU B", "Δ IoU")
BETTER = QColor(30, 130, 60)
WORSE = QColor(200, 40, 40)
STEM_ROLE = Qt.ItemDataRole.UserRole + 1

OpenImage = Callable[[int, Prompt], None]
"""open_image(row in dataset.pairs, the prompt the evaluation used on that image)."""


class CompareDatasetDialog(QDialog):
    """Non-modal. `models`: (label, spec) pairs for the two selectors (spec: a name, 'classic' or a .pth path);
    `model_a` / `model_b`: the preselected specs (added to the selectors if missing). `limit`: first N pairs only.

    Attributes for the window and tests: combo_a, combo_b, prompt_combo, limit_spin (0 = all), noc_check,
    run_button, cancel_button, progress_bar, message_label (errors, one line), kind_combo (which prompt kind the
    tables show, with 'both'), summary_table, failures_label, delta_table, result (EvaluationResult | None),
    comparisons (list[Comparison]).
    """

    def __init__(self, dataset: FloodDataset, models: Sequence[tuple[str, str]], model_a: str | None = None,
                 model_b: str | None = None, open_image: OpenImage | None = None, prompt: str = "point",
                 limit: int | None = None, noc: bool = True, max_clicks: int = 20,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare two models on the dataset")
        self.setModal(False)
        self.dataset = dataset
        self.open_image = open_image
        self.max_clicks = max_clicks
        self.result = None
        self.comparisons: list = []
        self.task: BackgroundJob | None = None
        self._labels: dict[str, str] = {}
        self._row_of_stem = {p.stem: i for i, p in enumerate(dataset.pairs)}

        self.combo_a, self.combo_b = QComboBox(), QComboBox()
        for combo, chosen in ((self.combo_a, model_a), (self.combo_b, model_b)):
            for label, spec in models:
                combo.addItem(label, spec)
            if chosen and combo.findData(chosen) < 0:
                combo.addItem(Path(chosen).name, chosen)
            combo.setCurrentIndex(max(0, combo.findData(chosen)) if chosen else 0)
        if not model_b and self.combo_b.count() > 1 and self.combo_b.currentData() == self.combo_a.currentData():
            self.combo_b.setCurrentIndex(1 if self.combo_a.currentIndex() == 0 else 0)
        self.prompt_combo = QComboBox()
        self.prompt_combo.addItems(PROMPT_MODES)
        self.prompt_combo.setCurrentText(prompt if prompt in PROMPT_MODES else "point")
        self.prompt_combo.setToolTip("point: one click at the water's interior point (best of SAM's 3 candidates); "
                                     "box: the water's bounding box; both: each as its own table")
        self.limit_spin = QSpinBox()
        self.limit_spin.setRange(0, max(1, len(dataset.pairs)))
        self.limit_spin.setSpecialValueText("all")
        self.limit_spin.setValue(limit or 0)
        self.limit_spin.setToolTip("Evaluate only the first N image/mask pairs (natural name order)")
        self.noc_check = QCheckBox("Simulated clicks (NoC@85/90)")
        self.noc_check.setChecked(noc)
        self.noc_check.setToolTip(f"Up to {max_clicks} simulated corrective clicks per image with point prompts "
                                  "(slower)")
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m (images × 2 models)")
        self.progress_bar.setValue(0)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kind_combo = QComboBox()
        self.kind_combo.currentIndexChanged.connect(self._show_comparison)
        self.kind_label = QLabel("Prompt shown")

        self.summary_table = _table(SUMMARY_COLUMNS)
        self.failures_label = QLabel()
        self.failures_label.setWordWrap(True)
        self.delta_table = _table(DELTA_COLUMNS)
        self.delta_table.setToolTip("Double-click an image to open it with both models' predictions from this "
                                    "prompt")
        self.delta_table.cellDoubleClicked.connect(self._on_double_click)
        self.delta_title = QLabel()

        form = QFormLayout()
        form.addRow("Model A (reference)", self.combo_a)
        form.addRow("Model B", self.combo_b)
        form.addRow("Prompt", self.prompt_combo)
        form.addRow("Images", self.limit_spin)
        form.addRow("", self.noc_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress_bar, 1)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        kind_row = QHBoxLayout()
        kind_row.addWidget(self.kind_label)
        kind_row.addWidget(self.kind_combo)
        kind_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message_label)
        layout.addLayout(kind_row)
        layout.addWidget(self.summary_table)
        layout.addWidget(self.failures_label)
        layout.addWidget(self.delta_title)
        layout.addWidget(self.delta_table, 1)
        self._set_results_visible(False)
        self.resize(620, 640)

    # ------------------------------------------------------------------------------------------------ public

    @property
    def model_a(self) -> str:
        """The reference model of the results shown (else the one selected)."""
        return self.result.models[0] if self._has_pair() else str(self.combo_a.currentData())

    @property
    def model_b(self) -> str:
        """The compared model of the results shown (else the one selected)."""
        return self.result.models[1] if self._has_pair() else str(self.combo_b.currentData())

    def run(self) -> None:
        """Start the evaluation of the selected models (no-op while one runs)."""
        if self.running():
            return
        a, b = str(self.combo_a.currentData() or ""), str(self.combo_b.currentData() or "")
        if not a or not b or a == b:
            self._message("Pick two different models to compare.", error=True)
            return
        self._labels = {a: self.combo_a.currentText(), b: self.combo_b.currentText()}
        limit = self.limit_spin.value() or None
        self.task = _eval_job(self.dataset, [a, b], self.prompt_combo.currentText(), self.noc_check.isChecked(),
                              self.max_clicks, limit)
        self.task.relay.progress.connect(self._on_progress)
        self.task.relay.finished.connect(self._on_finished)
        self.task.relay.failed.connect(self._on_failed)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the first report (models are validated first)
        self._message(f"Evaluating {self._labels[a]} and {self._labels[b]} on the same prompts …")
        self.task.start()

    def cancel(self) -> None:
        """Stop after the image being evaluated; the images done so far are shown."""
        if self.running():
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self._message("Cancelling after the current image …")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel a run and wait (up to `timeout` s) until no model code runs (before the app exits)."""
        if self.task is not None:
            self.task.cancel()
            self.task.join(timeout)

    def running(self) -> bool:
        return self.task is not None and self.task.is_running()

    def prompt_for(self, stem: str, kind: str | None = None) -> Prompt | None:
        """The prompt the evaluation gave both models on image `stem` for prompt kind `kind` (default: the one
        shown)."""
        if self.result is None:
            return None
        kind = kind or self.current_kind()
        for r in self.result.rows:
            if r.model == self.result.models[0] and r.prompt == kind and r.stem == stem:
                return r.used_prompt
        return None

    def current_kind(self) -> str | None:
        c = self.current_comparison()
        return c.prompt if c is not None else None

    def current_comparison(self):
        i = self.kind_combo.currentIndex()
        return self.comparisons[i] if 0 <= i < len(self.comparisons) else None

    def delta_rows(self) -> list[tuple[str, float, float, float]]:
        """(stem, IoU A, IoU B, Δ) as listed in the per-image table, top to bottom."""
        c = self.current_comparison()
        return [] if c is None else [(d.stem, d.reference_iou, d.iou, d.delta) for d in c.deltas[c.models[1]]]

    # ------------------------------------------------------------------------------------------------ worker

    def _on_progress(self, event: tuple[int, int]) -> None:
        if self.sender() is not (self.task.relay if self.task else None):
            return
        done, total = event
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)

    def _on_finished(self, result) -> None:
        if self.sender() is not (self.task.relay if self.task else None):
            return
        from floodlabel.core.evaluation.comparison import compare

        self._idle()
        self.result = result
        self.comparisons = [c for c in compare(result) if c.stems]
        self.kind_combo.blockSignals(True)
        self.kind_combo.clear()
        self.kind_combo.addItems([c.prompt for c in self.comparisons])
        self.kind_combo.blockSignals(False)
        multiple = len(self.comparisons) > 1
        self.kind_label.setVisible(multiple)
        self.kind_combo.setVisible(multiple)
        n = len(self.comparisons[0].stems) if self.comparisons else 0
        skipped = f"; {len(result.skipped)} skipped (no usable GT)" if result.skipped else ""
        if result.cancelled:
            self._message(f"Cancelled: {n} image{'s' if n != 1 else ''} scored by both models{skipped}.",
                          error=not n)
        elif not self.comparisons:
            self._message(f"No image could be evaluated{skipped}.", error=True)
        else:
            self._message(f"{n} image{'s' if n != 1 else ''}, identical prompts for both models{skipped}. "
                          "Double-click an image to open it with both predictions.")
        self._set_results_visible(bool(self.comparisons))
        self._show_comparison()

    def _on_failed(self, message: str) -> None:
        if self.sender() is not (self.task.relay if self.task else None):
            return
        self._idle()
        self._message(message, error=True)

    def _idle(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)

    # ------------------------------------------------------------------------------------------------ tables

    def _show_comparison(self, *_: object) -> None:
        c = self.current_comparison()
        self.summary_table.setRowCount(0)
        self.delta_table.setRowCount(0)
        if c is None:
            self.failures_label.setText("")
            self.delta_title.setText("")
            return
        a, b = c.models[0], c.models[1]
        la, lb = self._label(a), self._label(b)
        self.summary_table.setHorizontalHeaderLabels(["Metric", f"A: {la}", f"B: {lb}", "Δ (B − A)", "Δ %"])
        rows = [("IoU", "iou"), ("Dice", "dice"), ("Precision", "precision"), ("Recall", "recall")]
        if any(col.noc is not None and col.noc["count"] for col in c.columns.values()):
            rows += [("NoC@85", "NoC@85"), ("NoC@90", "NoC@90")]
        rows.append(("Failures (IoU < 0.5)", "failures"))
        for title, key in rows:
            d, pct = c.delta(b, key)
            lower_better = key.startswith("NoC@") or key == "failures"
            colour = None if not math.isfinite(d) or d == 0 else (BETTER if (d < 0) == lower_better else WORSE)
            cells = [title, value_cell(c, a, key, "–"), value_cell(c, b, key, "–"), signed_cell(d, key, "–"),
                     "–" if not math.isfinite(pct) else f"{pct:+.1f}%"]
            _append(self.summary_table, cells, colour, (3, 4))
        t = self.summary_table  # its rows, no more: the per-image list gets the rest of the height
        t.setFixedHeight(t.horizontalHeader().height() + t.rowCount() * t.verticalHeader().defaultSectionSize()
                         + 2 * t.frameWidth())
        fa, fb = c.columns[a].failures, c.columns[b].failures
        share = f" ({100.0 * c.failure_reduction(b) / fa:.0f}%)" if fa else ""
        self.failures_label.setText(f"Failures (IoU < 0.5): A {fa} → B {fb}, reduction {c.failure_reduction(b)}"
                                    f"{share}. {len(c.stems)} images, prompt: {c.prompt}.")
        self.delta_title.setText(f"Per-image Δ IoU (B − A), worst first: {len(c.deltas[b])} images")
        self.delta_table.setHorizontalHeaderLabels(["Image", "IoU A", "IoU B", "Δ IoU"])
        for stem, ia, ib, d in self.delta_rows():
            name = self.dataset.pairs[self._row_of_stem[stem]].image.name if stem in self._row_of_stem else stem
            colour = None if d == 0 else (BETTER if d > 0 else WORSE)
            _append(self.delta_table, [name, f"{ia:.3f}", f"{ib:.3f}", f"{d:+.3f}"], colour, (3,))
            self.delta_table.item(self.delta_table.rowCount() - 1, 0).setData(STEM_ROLE, stem)

    def _on_double_click(self, row: int, _column: int) -> None:
        item = self.delta_table.item(row, 0)
        if item is None or self.open_image is None:
            return
        stem = item.data(STEM_ROLE)
        prompt = self.prompt_for(stem)
        if stem not in self._row_of_stem or prompt is None:
            self._message(f"{stem} is not in the open dataset any more.", error=True)
            return
        try:
            self.open_image(self._row_of_stem[stem], prompt)
        except Exception as exc:  # noqa: BLE001 - the window's trouble becomes one line here
            self._message(f"Cannot open {stem}: {one_line_error(exc)}", error=True)

    # ------------------------------------------------------------------------------------------------ helpers

    def _has_pair(self) -> bool:
        return self.result is not None and len(self.result.models) >= 2

    def _label(self, model: str) -> str:
        return self._labels.get(model) or Path(model).name

    def _message(self, text: str, error: bool = False) -> None:
        self.message_label.setStyleSheet("color: #8a1c1c" if error else "")
        self.message_label.setText(text)

    def _set_results_visible(self, visible: bool) -> None:
        for w in (self.summary_table, self.delta_table, self.failures_label, self.delta_title):
            w.setVisible(visible)
        if not visible:
            self.kind_label.setVisible(False)
            self.kind_combo.setVisible(False)

    def done(self, code: int) -> None:  # noqa: D102 - closing (Esc, the title bar) cancels a run
        self.cancel()
        super().done(code)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.cancel()
        super().closeEvent(event)


def _eval_job(dataset: FloodDataset, models: list[str], prompt: str, noc: bool, max_clicks: int,
              limit: int | None) -> BackgroundJob:
    """`evaluate(dataset, models, [prompt], ...)` as a cancellable background job (one image at a time: jobs=1)."""

    def run(progress, cancel):
        from floodlabel.core.evaluation import evaluate as evaluation

        return evaluation.evaluate(dataset, models, [prompt], noc=noc, max_clicks=max_clicks, limit=limit,
                                   progress=lambda done, total: progress((done, total)), cancel=cancel, jobs=1)

    return BackgroundJob(run, "compare-dataset")


def _table(columns: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return table


def _append(table: QTableWidget, cells: list[str], colour: QColor | None, coloured: tuple[int, ...]) -> None:
    row = table.rowCount()
    table.insertRow(row)
    for col, text in enumerate(cells):
        item = QTableWidgetItem(text)
        if col > 0:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if colour is not None and col in coloured:
            item.setForeground(QBrush(colour))
        table.setItem(row, col, item)


