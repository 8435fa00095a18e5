"""Shortcut table: valid, unambiguous key sequences, every required action present; the dialog lists them all."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence

from floodlabel.gui.dialogs.help_dialog import ACTION_KEYS, ACTION_TEXT, SHORTCUTS, STROKE_RULE, HelpDialog, show_help


def test_keys_are_valid_and_unique():
    assert set(ACTION_KEYS) == set(ACTION_TEXT)
    seen = {}
    for action, keys in ACTION_KEYS.items():
        for key in keys:
            seq = QKeySequence(key)
            assert seq.count() == 1 and seq.toString() == key, (action, key)
            assert key not in seen, f"{key} bound to {seen.get(key)} and {action}"
            seen[key] = action
    for needed in ("Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Esc", "Ctrl+Backspace", "PgDown", "PgUp", "Return", "F1",
                   "Ctrl+O", "V", "B", "D", "E", "[", "]", "1", "2", "3", "F", "O", "G", "H", "A"):
        assert needed in seen
    assert SHORTCUTS["Left click"].startswith("Add a positive") and SHORTCUTS["PgDown, Ctrl+Right"] == "Next image"


def test_dialog_lists_every_shortcut_and_the_stroke_rule(qtbot):
    dialog = HelpDialog()
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == len(SHORTCUTS)
    assert [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())] == list(SHORTCUTS)
    assert STROKE_RULE in dialog.rule_label.text() and "later stroke wins" in STROKE_RULE
    shown = show_help()
    qtbot.addWidget(shown)
    assert shown.isVisible()
