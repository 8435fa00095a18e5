"""The live metrics panel: IoU (big), Dice, precision and recall against the ground truth, the click count, and the
water area of the current mask (m² / ha for georeferenced images, pixels and "no CRS" for photos)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from floodlabel.core.evaluation.metrics import MaskMetrics
from floodlabel.core.geo.area import Area

NO_GT_TEXT = "No ground-truth mask for this image"
NO_MASK = "—"
AREA_PREFIX = "Water area: "


class MetricsPanel(QWidget):
    """Shows a MaskMetrics (values 0..1, three decimals) and "Clicks: 5 · IoU ≥ 85% at click 3 · ≥ 90%: not yet"
    (the thresholds are NoC's, `core.evaluation.noc.NOC_THRESHOLDS`).

    set_metrics(None, True): the image has ground truth but there is no prediction yet (dashes).
    set_metrics(_, False): the numbers are hidden and NO_GT_TEXT is shown; the click line shows only the count.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._has_gt = False
        self._clicks: tuple[int, int | None, int | None] = (0, None, None)
        self.iou_label = QLabel(NO_MASK)
        font = QFont(self.iou_label.font())
        font.setPointSizeF(font.pointSizeF() * 2.4)
        font.setBold(True)
        self.iou_label.setFont(font)
        self.iou_caption = QLabel("IoU")
        self.dice_label = QLabel(NO_MASK)
        self.precision_label = QLabel(NO_MASK)
        self.recall_label = QLabel(NO_MASK)
        self.clicks_label = QLabel()
        self.clicks_label.setWordWrap(True)
        self.no_gt_label = QLabel(NO_GT_TEXT)
        self.no_gt_label.setWordWrap(True)
        self.area_label = QLabel()
        self.area_label.setWordWrap(True)
        self.area_label.setTextInteractionFlags(self.area_label.textInteractionFlags()
                                                | Qt.TextInteractionFlag.TextSelectableByMouse)

        self._numbers = QWidget()
        form = QFormLayout(self._numbers)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(self.iou_caption, self.iou_label)
        form.addRow("Dice", self.dice_label)
        form.addRow("Precision", self.precision_label)
        form.addRow("Recall", self.recall_label)
        layout = QVBoxLayout(self)
        layout.addWidget(self._numbers)
        layout.addWidget(self.no_gt_label)
        layout.addWidget(self.clicks_label)
        layout.addWidget(self.area_label)
        layout.addStretch(1)
        self.set_metrics(None, False)
        self.set_clicks(0, None, None)
        self.set_area(None)

    def set_metrics(self, metrics: MaskMetrics | None, has_gt: bool) -> None:
        """metrics of the current mask against the ground truth (None = no mask yet); has_gt False = none exists."""
        self._has_gt = bool(has_gt)
        self._numbers.setVisible(self._has_gt)
        self.no_gt_label.setVisible(not self._has_gt)
        values = (None,) * 4 if metrics is None or not has_gt else (
            metrics.iou, metrics.dice, metrics.precision, metrics.recall)
        for label, value in zip((self.iou_label, self.dice_label, self.precision_label, self.recall_label), values):
            label.setText(NO_MASK if value is None else f"{value:.3f}")
        self._render_clicks()

    def set_clicks(self, count: int, noc85: int | None, noc90: int | None) -> None:
        """Prompt clicks on this image and the click at which IoU first reached 0.85 / 0.90 (None = not yet): NoC
        at `core.evaluation.noc.NOC_THRESHOLDS`, as `core.evaluation.live_metrics.NocTracker` counts it."""
        self._clicks = (int(count), noc85, noc90)
        self._render_clicks()

    def set_area(self, area: Area | None) -> None:
        """The current mask's water area (`core.geo.area.mask_area(mask, item.geo)`): "Water area: 12.3456 ha
        (123,456.0 m², EPSG:32633)" or "Water area: 52,100 px (no CRS: area in pixels)"; None: no mask yet."""
        self.area_label.setText(AREA_PREFIX + (NO_MASK if area is None else area.describe()))
        self.area_label.setToolTip("" if area is None else f"{area.pixels:,} water pixels, {area.method}")

    def _render_clicks(self) -> None:
        count, noc85, noc90 = self._clicks
        text = f"Clicks: {count}"
        if self._has_gt and count > 0:  # no click yet (a reopened or recovered mask): no NoC to tell
            text += f" · {_reached('IoU ≥ 85%', noc85)} · {_reached('≥ 90%', noc90)}"
        self.clicks_label.setText(text)


def _reached(what: str, click: int | None) -> str:
    return f"{what}: not yet" if click is None else f"{what} at click {click}"
