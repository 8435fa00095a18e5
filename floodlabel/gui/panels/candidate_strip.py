"""The candidate strip: the model's (up to 3) candidate masks as small thumbnails with their scores; click to choose.

The strip takes its full size from the start, empty or not: filling it after the first click must not resize the
dock it is in (the canvas beside it would shrink and the image move under the mouse between two clicks)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QSizePolicy, QToolButton, QWidget

THUMB_SIDE = 80                    # thumbnails fit in THUMB_SIDE x THUMB_SIDE pixels (3 fit a 300-px dock)
MAX_CANDIDATES = 3
_PALETTE = np.array([[70, 70, 70], [30, 144, 255]], dtype=np.uint8)   # not water grey, water blue
_STYLE = ("QToolButton { border: 2px solid transparent; border-radius: 4px; padding: 2px; }"
          "QToolButton:checked { border: 2px solid #1e90ff; background: rgba(30, 144, 255, 60); }")


class CandidateStrip(QWidget):
    """Up to MAX_CANDIDATES buttons, each a thumbnail of a candidate mask with its score ("0.93").

    The chosen candidate is highlighted; clicking a button emits chosen(index). The strip only shows: the window
    decides what is chosen and calls set_candidates again.
    """

    chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(_STYLE)
        self._group = QButtonGroup(self)
        self._group.setExclusive(False)
        self._group.idClicked.connect(self._on_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.buttons: list[QToolButton] = []
        blank = QPixmap(THUMB_SIDE, THUMB_SIDE)
        blank.fill(Qt.GlobalColor.transparent)
        for i in range(MAX_CANDIDATES):
            b = QToolButton(self)
            b.setCheckable(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            b.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
            b.setIcon(QIcon(blank))  # a shown button's size (an icon, a score under it) while none is shown
            b.setText("0.00")
            policy = b.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # a hidden button keeps its place: the strip never resizes
            b.setSizePolicy(policy)
            b.setVisible(False)
            self._group.addButton(b, i)
            layout.addWidget(b)
            self.buttons.append(b)
        layout.addStretch(1)

    def set_candidates(self, thumbs: Sequence[np.ndarray], scores: Sequence[float], chosen: int | None) -> None:
        """thumbs: (h, w) bool masks (any size; shrunk to fit THUMB_SIDE), scores: the model's score of each,
        chosen: index of the highlighted one (None = none). Extra candidates beyond MAX_CANDIDATES are ignored."""
        n = min(len(thumbs), len(scores), MAX_CANDIDATES)
        for i, b in enumerate(self.buttons):
            if i >= n:
                b.setVisible(False)
                continue
            b.setIcon(QIcon(QPixmap.fromImage(thumbnail_image(thumbs[i]))))
            b.setText(f"{scores[i]:.2f}")
            b.setToolTip(f"Candidate {i + 1}: model score {scores[i]:.3f}")
            b.setChecked(i == chosen)
            b.setVisible(True)

    def clear(self) -> None:
        for b in self.buttons:
            b.setVisible(False)
            b.setChecked(False)

    def _on_clicked(self, i: int) -> None:
        for j, b in enumerate(self.buttons):   # the window confirms with set_candidates; show it at once
            b.setChecked(j == i)
        self.chosen.emit(i)


def thumbnail_image(mask: np.ndarray, side: int = THUMB_SIDE) -> QImage:
    """(h, w) bool mask -> RGB QImage (grey background, blue water), aspect kept, long side <= side."""
    m = np.asarray(mask).astype(np.uint8)
    h, w = m.shape
    s = min(1.0, side / max(h, w))
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    if (th, tw) != (h, w):
        m = (cv2.resize(m * 255, (tw, th), interpolation=cv2.INTER_AREA) >= 128).astype(np.uint8)
    rgb = np.ascontiguousarray(_PALETTE[m])
    return QImage(rgb.data, tw, th, 3 * tw, QImage.Format.Format_RGB888).copy()
