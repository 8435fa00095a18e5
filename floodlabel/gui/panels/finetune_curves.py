"""The fine-tune panel's curves: training loss per step (with the mean loss per epoch as dots) and validation IoU
per epoch with the base model's IoU as a dashed line, in two pyqtgraph plots.

Values are collected as they arrive and drawn by `redraw()`, which the panel calls from a timer (at most every
PLOT_INTERVAL_MS) and at the end of a run, so a fast run cannot flood the event loop with redraws.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt


class FinetuneCurves:
    """The two plot widgets (`loss_plot`, `iou_plot`; the panel lays them out) and their data.

    Attributes: loss_curve (step -> loss), epoch_loss_curve (step at each epoch's end -> that epoch's train loss),
    iou_curve (epoch -> val IoU), base_line (base model's val IoU, hidden until known); the data as lists:
    steps, losses, epoch_x, epoch_losses, val_epochs, val_ious; base_iou (float or None).
    """

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.losses: list[float] = []
        self.epoch_x: list[float] = []
        self.epoch_losses: list[float] = []
        self.val_epochs: list[int] = []
        self.val_ious: list[float] = []
        self.base_iou: float | None = None
        self._dirty = False

        self.loss_plot = _plot("Training loss", "step")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((110, 170, 255), width=1))
        self.epoch_loss_curve = self.loss_plot.plot([], [], pen=None, symbol="o", symbolSize=6,
                                                    symbolBrush=(255, 200, 80), symbolPen=None)
        self.iou_plot = _plot("Validation IoU", "epoch")
        self.iou_curve = self.iou_plot.plot([], [], pen=pg.mkPen((90, 210, 120), width=2), symbol="o",
                                            symbolSize=6, symbolBrush=(90, 210, 120), symbolPen=None)
        self.base_line = pg.InfiniteLine(angle=0, movable=False,
                                         pen=pg.mkPen((200, 200, 200), width=1, style=Qt.PenStyle.DashLine),
                                         label="base {value:.3f}",
                                         labelOpts={"position": 0.12, "color": (200, 200, 200)})
        self.base_line.setVisible(False)
        self.iou_plot.addItem(self.base_line, ignoreBounds=True)

    def add_step(self, step: float, loss: float) -> None:
        """One training step's loss (drawn at the next `redraw`)."""
        self.steps.append(step)
        self.losses.append(float(loss))
        self._dirty = True

    def add_epoch(self, step: float, epoch: int, train_loss: float, val_iou: float) -> None:
        """One finished epoch: its mean train loss at `step` and its validation IoU."""
        self.epoch_x.append(step)
        self.epoch_losses.append(train_loss)
        self.val_epochs.append(epoch)
        self.val_ious.append(val_iou)
        self._dirty = True

    def set_base_iou(self, value: float) -> None:
        """The base model's validation IoU (the dashed line)."""
        self.base_iou = float(value)
        self._dirty = True

    def redraw(self) -> None:
        """Draw what arrived since the last redraw (nothing to do when nothing did)."""
        if not self._dirty:
            return
        self._dirty = False
        self.loss_curve.setData(self.steps, self.losses)
        self.epoch_loss_curve.setData(self.epoch_x, self.epoch_losses)
        self.iou_curve.setData(self.val_epochs, self.val_ious)
        if self.base_iou is not None and math.isfinite(self.base_iou):
            self.base_line.setVisible(True)  # before setValue: the label is only updated while visible
            self.base_line.setValue(self.base_iou)
            values = self.val_ious + [self.base_iou]
            lo, hi = min(values), max(values)
            pad = max(0.02, (hi - lo) * 0.15)
            self.iou_plot.setYRange(max(0.0, lo - pad), min(1.0, hi + pad), padding=0)
        if self.val_epochs:
            last = max(self.val_epochs)
            self.iou_plot.setXRange(0.5, last + 0.5, padding=0)
            spacing = max(1, math.ceil(last / 8))
            self.iou_plot.getAxis("bottom").setTickSpacing(spacing, spacing)  # whole epochs

    def clear(self) -> None:
        """Empty both plots (a new run)."""
        for values in (self.steps, self.losses, self.epoch_x, self.epoch_losses, self.val_epochs, self.val_ious):
            values.clear()
        self.base_iou = None
        self.base_line.setVisible(False)
        self._dirty = True
        self.redraw()
        self.iou_plot.getAxis("bottom").setTickSpacing()
        self.iou_plot.enableAutoRange()


def _plot(title: str, x_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background=(32, 32, 32))
    plot.setTitle(title, size="9pt")
    plot.setLabel("bottom", x_label)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMinimumHeight(130)
    return plot
