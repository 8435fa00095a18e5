"""Keyboard and mouse shortcuts (one table the window wires its actions from) and the help dialog that lists them.

ACTION_KEYS: action id -> QKeySequence strings (PortableText), for `QAction.setShortcuts`.
SHORTCUTS:   what the help shows: "keys" -> what they do (mouse gestures first, then ACTION_KEYS in order).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

STROKE_RULE = ("Brush and eraser strokes are overrides: painted pixels stay water and erased pixels stay dry whatever "
               "prompts or candidates come later; a later stroke wins where strokes overlap; undo or Clear removes "
               "them.")

MOUSE: dict[str, str] = {
    "Left click": "Add a positive point (water here)",
    "Right click": "Add a negative point (not water here)",
    "Shift+drag": "Draw a box prompt (prompt tool)",
    "Left drag": "Pan (prompt tool); draw a box (box tool); paint or erase (brush, eraser)",
    "Middle drag": "Pan (every tool)",
    "Wheel": "Zoom about the cursor",
}

ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "prompt_tool": ("V",),
    "box_tool": ("B",),
    "brush_tool": ("D",),
    "eraser_tool": ("E",),
    "brush_smaller": ("[",),
    "brush_larger": ("]",),
    "candidate_1": ("1",),
    "candidate_2": ("2",),
    "candidate_3": ("3",),
    "undo": ("Ctrl+Z",),
    "redo": ("Ctrl+Shift+Z", "Ctrl+Y"),
    "drop_prompts": ("Esc",),
    "clear_mask": ("Ctrl+Backspace",),
    "fit": ("F",),
    "toggle_overlay": ("O",),
    "toggle_gt_outline": ("G",),
    "toggle_hover_preview": ("H",),
    "auto": ("A",),
    "next_image": ("PgDown", "Ctrl+Right"),
    "previous_image": ("PgUp", "Ctrl+Left"),
    "toggle_gt_view": ("Shift+G",),
    "accept": ("Return", "Enter"),
    "open_folder": ("Ctrl+O",),
    "export": ("Ctrl+E",),
    "help": ("F1",),
}

ACTION_TEXT: dict[str, str] = {
    "prompt_tool": "Prompt tool (points; Shift+drag for a box)",
    "box_tool": "Box tool",
    "brush_tool": "Brush: paint water",
    "eraser_tool": "Eraser: paint not-water",
    "brush_smaller": "Smaller brush",
    "brush_larger": "Larger brush",
    "candidate_1": "Show SAM's candidate mask 1",
    "candidate_2": "Show SAM's candidate mask 2",
    "candidate_3": "Show SAM's candidate mask 3",
    "undo": "Undo",
    "redo": "Redo",
    "drop_prompts": "Drop the prompts (points, box, candidate); strokes stay",
    "clear_mask": "Clear the mask: prompts and strokes",
    "fit": "Fit the image to the view",
    "toggle_overlay": "Show or hide the mask overlay",
    "toggle_gt_outline": "Show or hide the ground-truth outline",
    "toggle_hover_preview": "Hover preview on or off (the mask a click would give)",
    "auto": "Auto: water mask from the current points",
    "next_image": "Next image",
    "previous_image": "Previous image",
    "toggle_gt_view": "Show or hide the ground-truth view beside the prediction",
    "accept": "Accept the mask (saved at the image's size with its prompts), then the next image not accepted",
    "open_folder": "Open a dataset folder",
    "export": "Export the accepted masks (PNG, COCO JSON)",
    "help": "This help",
}

SHORTCUTS: dict[str, str] = {**MOUSE, **{", ".join(ACTION_KEYS[a]): ACTION_TEXT[a] for a in ACTION_KEYS}}
"""Keys (or mouse gesture) -> what they do, in the order the help shows them."""


class HelpDialog(QDialog):
    """A non-modal dialog: the SHORTCUTS table and the stroke rule. Attributes: table, rule_label."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("FloodLabel: shortcuts")
        self.table = QTableWidget(len(SHORTCUTS), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Does"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for row, (keys, text) in enumerate(SHORTCUTS.items()):
            self.table.setItem(row, 0, QTableWidgetItem(keys))
            self.table.setItem(row, 1, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeRowsToContents()

        self.rule_label = QLabel(f"<b>Strokes.</b> {STROKE_RULE}")
        self.rule_label.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.rule_label)
        layout.addWidget(buttons)
        self.resize(620, 640)


def show_help(parent: QWidget | None = None) -> HelpDialog:
    """Open the help non-modally (it deletes itself when closed) and return it."""
    dialog = HelpDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
