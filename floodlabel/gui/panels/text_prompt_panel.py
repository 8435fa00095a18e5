"""The text prompt panel: a phrase ("water"), Run, a threshold slider, "Pick" (a click on an instance drops or keeps
it) and what the last run found. Widgets only: the window hooks it to the segmentation controller
(`gui/window/text_prompt/text_prompt_actions`)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QSlider, QVBoxLayout,
                               QWidget)

from floodlabel.core.annotation.prompts import DEFAULT_PHRASE, DEFAULT_TEXT_THRESHOLD, MIN_TEXT_THRESHOLD

UNAVAILABLE_TIP = ("Text prompts need a model that takes them: SAM 3 (Model → Models…, or "
                   "`floodlabel models download sam3`), then pick sam3 in the Model list")


class TextPromptPanel(QWidget):
    """Signals: run_requested(phrase, threshold), threshold_changed(threshold in [0, 1]), cancel_requested().

    phrase_edit (QLineEdit), run_button, cancel_button, threshold_slider (5..100:
    MIN_TEXT_THRESHOLD..1), threshold_label, pick_button
    (checkable: left clicks toggle instances instead of adding points), info_label, busy (QProgressBar).
    """

    run_requested = Signal(str, float)
    threshold_changed = Signal(float)
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.phrase_edit = QLineEdit(DEFAULT_PHRASE)
        self.phrase_edit.setPlaceholderText("what to find, e.g. water")
        self.phrase_edit.setToolTip("A short noun phrase: every instance of it in the image becomes the mask")
        self.phrase_edit.returnPressed.connect(self._run)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Find every instance of the phrase (the model runs in the background)")
        self.run_button.clicked.connect(self._run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.setVisible(False)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(round(MIN_TEXT_THRESHOLD * 100), 100)  # no instance scores lower
        self.threshold_slider.setValue(round(DEFAULT_TEXT_THRESHOLD * 100))
        self.threshold_slider.setToolTip("Instances scoring at least this count as water (no model run)")
        self.threshold_slider.valueChanged.connect(self._on_slider)
        self.threshold_label = QLabel()
        self.threshold_label.setMinimumWidth(self.threshold_label.fontMetrics().horizontalAdvance("0.00") + 4)
        self.pick_button = QPushButton("Pick")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("While on, a click on an instance drops it or keeps it again (Ctrl+click does "
                                    "the same with any tool)")
        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # one model call: busy, with the seconds in the label
        self.busy.setMaximumHeight(8)
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        title = QLabel("<b>Text prompt</b>")
        layout.addWidget(title)
        row = QHBoxLayout()
        row.addWidget(self.phrase_edit, 1)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Threshold"))
        row.addWidget(self.threshold_slider, 1)
        row.addWidget(self.threshold_label)
        row.addWidget(self.pick_button)
        layout.addLayout(row)
        layout.addWidget(self.busy)
        layout.addWidget(self.info_label)
        self._quiet = False
        self._on_slider(self.threshold_slider.value())
        self.set_available(False)

    @property
    def phrase(self) -> str:
        return " ".join(self.phrase_edit.text().split())

    @property
    def threshold(self) -> float:
        return self.threshold_slider.value() / 100

    def set_phrase(self, phrase: str) -> None:
        self.phrase_edit.setText(phrase)

    def set_available(self, available: bool) -> None:
        """Enabled only for a model with a text prompt; otherwise a tooltip says which model has it."""
        for w in (self.phrase_edit, self.run_button, self.threshold_slider, self.pick_button):
            w.setEnabled(available)
        self.setToolTip("" if available else UNAVAILABLE_TIP)
        if not available:
            self.pick_button.setChecked(False)
            self.info_label.setText("Needs SAM 3 (hover for how)")

    def set_running(self, running: bool, text: str = "") -> None:
        self.busy.setVisible(running)
        self.cancel_button.setVisible(running)
        self.run_button.setVisible(not running)
        if text:
            self.info_label.setText(text)

    def show_state(self, state: tuple | None) -> None:
        """The controller's `text_state`: None, or (phrase, threshold, kept, above, found or None while running)."""
        if state is None:
            if self.run_button.isEnabled():
                self.info_label.setText("Run finds every instance at once; then refine with clicks and the brush")
            return
        phrase, threshold, kept, above, found = state
        self._quiet = True
        self.threshold_slider.setValue(round(threshold * 100))
        self._quiet = False
        self._on_slider(self.threshold_slider.value(), emit=False)
        if found is None:
            self.info_label.setText(f"{phrase!r}: waiting for the model …")
        else:
            dropped = f", {above - kept} dropped" if above > kept else ""
            self.info_label.setText(f"{phrase!r}: {kept} of {found} instances kept ({found - above} below the "
                                    f"threshold{dropped})")

    def _run(self) -> None:
        if self.run_button.isEnabled() and self.phrase:
            self.run_requested.emit(self.phrase, self.threshold)

    def _on_slider(self, value: int, emit: bool = True) -> None:
        self.threshold_label.setText(f"{value / 100:.2f}")
        if emit and not self._quiet:
            self.threshold_changed.emit(value / 100)
