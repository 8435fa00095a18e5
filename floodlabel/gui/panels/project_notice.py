"""A message about the project that stays until the user dismisses it: read-only and why, a database that cannot
be read, accepted masks waiting to be recovered. Per-image messages (a file that cannot be shown) use the window's
message line instead, which the next image clears."""

from __future__ import annotations

import html
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


class ProjectNotice(QFrame):
    """One notice at a time: its text, an optional action button and a close button (×)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("project_notice")
        self.setStyleSheet("#project_notice { background: #fff4d6; border: 1px solid #e6c66b; }"
                           "QLabel { color: #5a4500; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.close_button = QPushButton("×")
        self.close_button.setToolTip("Dismiss this message")
        self.close_button.setFlat(True)
        self.close_button.setFixedWidth(28)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 3, 3)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(self.close_button)
        self.action_button.clicked.connect(self._on_action)
        self.close_button.clicked.connect(lambda: self.dismiss())
        self._action: Callable[[], None] | None = None
        self.key = ""
        self.setVisible(False)

    def show_notice(self, key: str, text: str, action: str = "", on_action: Callable[[], None] | None = None) -> None:
        """Show `text` (plain) until dismissed or replaced; `key` names it for `dismiss(key)`. With `action`, a
        button of that name calls `on_action`."""
        self.key = key
        self.label.setText(html.escape(text))
        self.action_button.setText(action)
        self.action_button.setVisible(bool(action))
        self.action_button.setEnabled(True)
        self._action = on_action
        self.setVisible(True)

    def dismiss(self, key: str | None = None) -> None:
        """Hide the notice (only when it is `key`'s, if given)."""
        if key is not None and key != self.key:
            return
        self.key = ""
        self._action = None
        self.setVisible(False)

    def text(self) -> str:
        return html.unescape(self.label.text()) if self.isVisible() else ""

    def _on_action(self) -> None:
        if self._action is not None:
            self.action_button.setEnabled(False)  # one recovery at a time; the result replaces the notice
            self._action()
