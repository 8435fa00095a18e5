"""The window's text prompt: the panel (`gui/panels/text_prompt_panel`) hooked to the segmentation controller.

Run → the controller's `text_steps.run` (an annotation step, `text_prompt_steps`; the model runs in
`text_prompt_jobs`' worker, the UI thread never waits), the slider → `text_steps.set_threshold` (re-filters, no model
run), a click with Pick on (or Ctrl+click) → `text_steps.toggle_at`. The phrase is remembered per dataset folder (QSettings "text_prompt/phrase/
<folder>"); the panel is enabled only while the session's segmenter says `text_prompt`.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication

from floodlabel.core.annotation.prompts import DEFAULT_PHRASE
from floodlabel.gui.panels.text_prompt_panel import TextPromptPanel


class TextPromptActions(QObject):
    def __init__(self, controller, panel: TextPromptPanel, settings: QSettings, show_message,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.panel = panel
        self.settings = settings
        self.show_message = show_message
        self.folder: str | None = None
        self._timer = QTimer(self, interval=200)
        self._timer.timeout.connect(self._tick)
        panel.run_requested.connect(self.run)
        panel.threshold_changed.connect(controller.text_steps.set_threshold)
        panel.cancel_requested.connect(self._cancel)
        controller.text_state.connect(panel.show_state)
        controller.text.running_changed.connect(self._on_running)
        controller.session_ready.connect(lambda _model_id: panel.set_available(controller.text_steps.available))

    def set_folder(self, folder: str | Path) -> None:
        """A dataset folder opened: its remembered phrase (default "water") in the box."""
        self.folder = str(Path(folder).resolve())
        self.panel.set_phrase(str(self.settings.value(self._key(), DEFAULT_PHRASE)) or DEFAULT_PHRASE)

    def run(self, phrase: str, threshold: float) -> None:
        try:
            self.controller.text_steps.run(phrase, threshold)
        except ValueError as exc:
            self.show_message(f"Text prompt: {exc}")
            return
        if self.folder is not None:
            self.settings.setValue(self._key(), phrase)

    def handle_click(self, x: float, y: float, positive: bool) -> bool:
        """A canvas click (original frame): True when it was an instance toggle (Pick on, or Ctrl held), so it
        adds no point."""
        ctrl = bool(QApplication.keyboardModifiers() & Qt.KeyboardModifier.ControlModifier)
        if not (self.panel.pick_button.isChecked() or ctrl) or self.controller.annotation is None \
                or self.controller.annotation.text is None:
            return False
        if not self.controller.text_steps.toggle_at(x, y):
            self.panel.info_label.setText("No instance there above the threshold (Pick toggles instances)")
        return True

    def _cancel(self) -> None:
        self.controller.text_steps.cancel()
        self.panel.info_label.setText("Cancelled: the model's answer will be dropped. Run again to retry.")

    def _on_running(self, running: bool) -> None:
        self.panel.set_running(running)
        if running:
            self._timer.start()
            self._tick()
        else:
            self._timer.stop()

    def _tick(self) -> None:
        seconds = time.perf_counter() - self.controller.text.started_at
        self.panel.info_label.setText(f"Finding every instance … {seconds:.1f} s")

    def _key(self) -> str:
        return f"text_prompt/phrase/{self.folder}"
