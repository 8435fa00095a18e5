"""The dataset overview: key figures of `core.dataset_stats.compute_stats`, a water-ratio histogram and an
image-size scatter (pyqtgraph).

compute_stats decodes every mask, so it runs in a BackgroundCall, and only while the view is visible: a hidden or
tabbed-away dock costs no CPU (the SAM encoder needs both cores). It starts after the window's first paint
(`gui/workers/on_screen.py`), or STATS_DELAY_MS after a folder is opened in a shown window. A folder of more than
STATS_IN_CHILD_ABOVE files is decoded in a child process at a low priority (`core.data.stats_child`: in the window,
290 real photos kept the event loop waiting 65-88 ms); a smaller one in the worker thread, which is quicker than
starting a child. Setting another dataset abandons the running computation at its next file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette, QShowEvent
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from floodlabel.core.data.dataset_stats import DatasetStats, compute_stats
from floodlabel.core.data.stats_child import compute_stats_in_child
from floodlabel.core.data.datasets import FloodDataset
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.gui.workers.background import BackgroundCall
from floodlabel.gui.workers.on_screen import when_on_screen

T = TypeVar("T")
HISTOGRAM_BINS = 20
"""Water-ratio histogram bins over 0-100 % (5 % each)."""
STATS_IN_CHILD_ABOVE = 50
"""Folders with more image and mask files than this are decoded for their statistics in a child process."""
STATS_DELAY_MS = 1000
"""A folder opened in a shown window has its statistics started this long later: its first image loads and shows
first (the two decoding threads beside the image loader and the encoder kept the event loop waiting 73-130 ms)."""

FIGURES = ("Images", "Pairs (image + mask)", "Problems", "Masks measured", "Water ratio mean", "Water ratio median",
           "Water ratio pooled", "Water ratio min / max", "Image sizes")


class DatasetView(QWidget):
    """Statistics of one dataset. `set_dataset(dataset)`; the figures and plots appear when the worker is done.

    Attributes for tests and the window: stats (DatasetStats | None), status_label (QLabel), figure_labels
    (dict: FIGURES name -> value QLabel), histogram (pg.PlotWidget) with histogram_bars (pg.BarGraphItem),
    size_plot (pg.PlotWidget) with size_points (pg.ScatterPlotItem).
    Signal stats_ready(object DatasetStats) when figures for the current dataset are shown.
    """

    stats_ready = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stats: DatasetStats | None = None
        self._dataset: FloodDataset | None = None
        self._call: BackgroundCall | None = None
        self._cancel: threading.Event | None = None
        self._pending = False
        self._progress: _ProgressRelay | None = None

        self.status_label = QLabel("No dataset")
        self.status_label.setWordWrap(True)
        form = QFormLayout()
        self.figure_labels: dict[str, QLabel] = {}
        for name in FIGURES:
            value = QLabel("–")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.figure_labels[name] = value
            form.addRow(name, value)

        text = self.palette().color(QPalette.ColorRole.WindowText)
        self.histogram = _plot("Water ratio per mask", "water (%)", "masks", text)
        self.histogram_bars = pg.BarGraphItem(x=[], height=[], width=100 / HISTOGRAM_BINS * 0.9,
                                              brush=pg.mkBrush(60, 120, 220, 200), pen=pg.mkPen(None))
        self.histogram.addItem(self.histogram_bars)
        self.histogram.setXRange(0, 100, padding=0.02)
        self.size_plot = _plot("Image sizes", "width (px)", "height (px)", text)
        self.size_points = pg.ScatterPlotItem(size=7, brush=pg.mkBrush(60, 120, 220, 140), pen=pg.mkPen(None))
        self.size_plot.addItem(self.size_points)

        plots = QHBoxLayout()
        plots.addWidget(self.histogram)
        plots.addWidget(self.size_plot)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status_label)
        layout.addLayout(form)
        layout.addLayout(plots, 1)

    # ------------------------------------------------------------------------------------------------ public API

    def set_dataset(self, dataset: FloodDataset | None) -> None:
        """Show `dataset`'s statistics; they are computed in a worker now if the view is visible, else when shown."""
        if self._cancel is not None:
            self._cancel.set()
        self._call = self._cancel = None
        self._dataset, self.stats = dataset, None
        self._show_stats(None)
        self._pending = dataset is not None
        self.status_label.setText("No dataset" if dataset is None else "Statistics are computed when shown")
        if self.isVisible():
            QTimer.singleShot(STATS_DELAY_MS, self, self._start_if_visible)

    def is_computing(self) -> bool:
        return self._call is not None and self._call.is_running()

    # ------------------------------------------------------------------------------------------------ events, slots

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        when_on_screen(self, self, self._start_if_visible)  # decoding every mask: after the window's first paint

    def _start_if_visible(self) -> None:
        if self.isVisible():
            self._start()

    def _start(self) -> None:
        if not self._pending or self._dataset is None:
            return
        self._pending = False
        dataset, cancel = self._dataset, threading.Event()
        self._cancel = cancel
        self._progress = _ProgressRelay()
        self._progress.progress.connect(self._on_progress)
        progress = self._progress

        def run() -> DatasetStats:
            if len(dataset.pairs) + len(dataset.masks_without_images) > STATS_IN_CHILD_ABOVE:
                return compute_stats_in_child(dataset, lambda what, done, total: progress.progress.emit(what, done,
                                                                                                     total), cancel)
            return compute_stats(dataset, progress=lambda items, total, what: _checked(items, total, what,
                                                                                     cancel, progress))

        self._call = BackgroundCall(run)
        self._call.succeeded.connect(self._on_succeeded)
        self._call.failed.connect(self._on_failed)
        self.status_label.setText(f"Computing statistics of {dataset.root} …")
        self._call.start()

    def _is_current(self) -> bool:
        return self._call is not None and self.sender() is self._call.relay

    def _on_progress(self, what: str, done: int, total: int) -> None:
        if self._call is not None and self.sender() is self._progress:
            self.status_label.setText(f"Computing statistics: {what} {done:,} / {total:,} …")

    def _on_succeeded(self, stats: DatasetStats) -> None:
        if not self._is_current():
            return
        self._call = self._cancel = None
        self.stats = stats
        self.status_label.setText(stats.root)
        self._show_stats(stats)
        self.stats_ready.emit(stats)

    def _on_failed(self, message: str) -> None:
        if not self._is_current():
            return
        self._call = self._cancel = None
        self.status_label.setText(f"Statistics failed: {message}")

    # ------------------------------------------------------------------------------------------------ helpers

    def _show_stats(self, s: DatasetStats | None) -> None:
        values = dict.fromkeys(FIGURES, "–")
        if s is not None:
            values.update({
                "Images": f"{s.images:,}",
                "Pairs (image + mask)": f"{s.pairs:,}",
                "Problems": f"{s.problem_count:,}",
                "Masks measured": f"{s.masks_measured:,}",
                "Water ratio mean": _pct(s.water_ratio_mean),
                "Water ratio median": _pct(s.water_ratio_median),
                "Water ratio pooled": _pct(s.water_ratio_pooled) + "  (all pixels together)"
                if s.water_ratio_pooled is not None else "–",
                "Water ratio min / max": f"{_pct(s.water_ratio_min)} / {_pct(s.water_ratio_max)}",
                "Image sizes": _sizes_text(s),
            })
        for name, text in values.items():
            self.figure_labels[name].setText(text)

        ratios = np.asarray(s.water_ratios if s else [], float) * 100
        counts, edges = np.histogram(ratios, bins=HISTOGRAM_BINS, range=(0, 100))
        self.histogram_bars.setOpts(x=(edges[:-1] + edges[1:]) / 2, height=counts)
        self.histogram.setYRange(0, max(1, int(counts.max(initial=0))), padding=0.05)
        sizes = np.asarray(s.image_sizes if s else [], float).reshape(-1, 2)
        self.size_points.setData(x=sizes[:, 0], y=sizes[:, 1])
        if len(sizes):
            self.size_plot.enableAutoRange()


class _ProgressRelay(QObject):
    progress = Signal(str, int, int)  # what, done, total


class _Cancelled(FloodLabelError):
    """The dataset was replaced while its statistics were computed."""


def _checked(items: Iterable[T], total: int, what: str, cancel: threading.Event,
             relay: _ProgressRelay) -> Iterator[T]:
    """compute_stats' progress hook: stops the computation once `cancel` is set; reports about every 5 %."""
    step = max(1, total // 20)
    for i, item in enumerate(items):
        if cancel.is_set():
            raise _Cancelled("cancelled")
        if i % step == 0:
            relay.progress.emit(what, i, total)
        yield item


def _plot(title: str, x_label: str, y_label: str, text_colour: QColor) -> pg.PlotWidget:
    """A small plot on the window's background, axes in its text colour (no SI unit prefixes: labels say units)."""
    plot = pg.PlotWidget(background=None)
    plot.setTitle(title, color=text_colour)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    for axis in ("bottom", "left"):
        plot.getAxis(axis).setTextPen(text_colour)
        plot.getAxis(axis).setPen(text_colour)
    plot.setMenuEnabled(False)
    plot.setMinimumSize(200, 160)
    return plot


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _sizes_text(s: DatasetStats) -> str:
    if not s.width_range or not s.height_range:
        return "–"
    return (f"{s.unique_image_sizes} unique; width {s.width_range[0]}–{s.width_range[1]} px, "
            f"height {s.height_range[0]}–{s.height_range[1]} px")
