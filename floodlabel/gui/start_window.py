"""The launch window: model status and download, dataset overview, what comes next, and the compute set-up."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QIcon, QShowEvent
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QMainWindow, QVBoxLayout, QWidget

from floodlabel import __version__
from floodlabel.gui.workers.background import BackgroundCall
from floodlabel.gui.dataset_panel import DatasetPanel
from floodlabel.gui.window.geometry_probe import install_geometry_probe
from floodlabel.gui.panels.model_panel import ModelPanel
from floodlabel.runtime import allocator_status

COMING_NEXT = (
    "The annotation canvas (click or drag a box → SAM mask, pick one of three "
    "candidates, brush and eraser with undo, ground truth and IoU beside it, accept, export PNG / COCO), "
    "fine-tuning the mask decoder on your accepted masks, and side-by-side checkpoint comparison."
    "<br>Meanwhile the command line offers <code>floodlabel stats DIR</code> (dataset statistics), "
    "<code>floodlabel eval DATA</code> (evaluate models with automatic prompts) and "
    "<code>floodlabel models</code> (list, download, locate checkpoints)."
)


class StartWindow(QMainWindow):
    """Title "FloodLabel". `data`: a dataset folder to open at once; `model`: the `--model` value (name or .pth).

    The compute line (which imports torch) is filled in by a background call started when the window first shows.
    """

    def __init__(self, data: str | Path | None = None, model: str | None = None, icon: QIcon | None = None) -> None:
        super().__init__()
        self.setWindowTitle("FloodLabel")
        if icon is not None and not icon.isNull():
            self.setWindowIcon(icon)
        self.model_panel = ModelPanel(model)
        self.dataset_panel = DatasetPanel()
        self.compute_label = QLabel(f"{allocator_status().capitalize()}   ·   Compute: checking …")
        self.compute_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._compute_call: BackgroundCall | None = None
        self._build(icon)
        self.resize(max(1000, self.sizeHint().width()), max(600, self.sizeHint().height()))
        if data is not None:
            self.dataset_panel.open_folder(data)
        install_geometry_probe(self, widgets={"open_folder": self.dataset_panel.open_button})  # tests only

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if self._compute_call is None:
            self._compute_call = BackgroundCall(_describe_compute)
            self._compute_call.succeeded.connect(self._show_compute)
            self._compute_call.failed.connect(self._compute_failed)
            QTimer.singleShot(0, self._compute_call.start)  # after the first paint: torch takes seconds to import

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.model_panel.cancel_download()  # the worker is a daemon thread: exit never waits for the network
        super().closeEvent(event)

    def _show_compute(self, text: str) -> None:
        self.compute_label.setText(f"{allocator_status().capitalize()}   ·   Compute: {text}")

    def _compute_failed(self, message: str) -> None:
        self._show_compute(f"unavailable ({message})")

    def _build(self, icon: QIcon | None) -> None:
        logo = QLabel()
        if icon is not None and not icon.isNull():
            logo.setPixmap(icon.pixmap(48, 48))
        title = QLabel(f"<span style='font-size: 18pt; font-weight: bold;'>FloodLabel</span>"
                       f"&nbsp;&nbsp;<span style='color: gray;'>{__version__}</span><br>"
                       "Label flood water in photos with Segment Anything; fix masks, fine-tune, compare.")
        header = QHBoxLayout()
        header.addWidget(logo)
        header.addWidget(title, 1)

        panels = QHBoxLayout()
        panels.addWidget(self.model_panel, 11)
        panels.addWidget(self.dataset_panel, 9)

        next_box = QGroupBox("Coming next")
        next_label = QLabel(COMING_NEXT)
        next_label.setWordWrap(True)
        next_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        QVBoxLayout(next_box).addWidget(next_label)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(header)
        layout.addLayout(panels, 1)
        layout.addWidget(next_box)
        self.setCentralWidget(central)
        self.statusBar().addWidget(self.compute_label, 1)


def _describe_compute() -> str:
    from floodlabel.core.segment.compute_config import default_compute_config  # imports torch

    return default_compute_config().describe()
