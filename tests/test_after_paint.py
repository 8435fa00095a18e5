"""gui.canvas.after_paint: work put off until a widget's next paint, one due piece at a time, markers held back
until their mask is drawn (offscreen Qt)."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QLabel

from floodlabel.gui.canvas.after_paint import LATEST_MS, AfterPaint, Due, HeldMarkers


class _Paints(QObject):
    """Notes, in `log`, each Paint event `widget` gets."""

    def __init__(self, widget, log: list) -> None:
        super().__init__(widget)
        self.log = log
        widget.installEventFilter(self)

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
        if ev.type() == QEvent.Type.Paint:
            self.log.append("paint")
        return False


def _shown_label(qtbot) -> QLabel:
    label = QLabel("x")
    qtbot.addWidget(label)
    label.show()
    qtbot.waitExposed(label)
    qtbot.wait(20)  # the first paints are done
    return label


def test_work_runs_after_the_next_paint_in_order(qtbot):
    label, log = _shown_label(qtbot), []
    after = AfterPaint(label)
    _Paints(label, log)
    after.call(lambda: log.append("first"))
    after.call(lambda: log.append("second"))
    assert log == []                               # not at once
    label.setText("changed")                       # something to paint
    qtbot.waitUntil(lambda: "second" in log, timeout=2000)
    assert log[0] == "paint" and log[-2:] == ["first", "second"]


def test_work_runs_at_the_latest_without_a_paint_and_at_once_when_hidden(qtbot):
    label, log = _shown_label(qtbot), []
    after = AfterPaint(label)
    t0 = time.perf_counter()
    after.call(lambda: log.append(time.perf_counter() - t0))
    qtbot.waitUntil(lambda: bool(log), timeout=2000)   # nothing repainted the label
    assert log[0] >= LATEST_MS / 1000 * 0.8
    label.hide()
    after.call(lambda: log.append("hidden"))
    assert log[-1] == "hidden"


def test_due_keeps_one_piece_of_work():
    ran, waiting = [], []
    due = Due()
    due.after = waiting.append                     # a paint that has not come yet
    due.put(lambda: ran.append(1))
    due.put(lambda: ran.append(2))                 # replaces the first
    assert due.pending and ran == []
    due.run()
    assert ran == [2] and not due.pending
    for fn in waiting:                             # the paints come: nothing is due any more
        fn()
    assert ran == [2]
    due.put(lambda: ran.append(3))
    due.drop()
    waiting[-1]()
    assert ran == [2] and not due.pending
    due.after = lambda fn: fn()                    # the default: at once
    due.put(lambda: ran.append(4))
    assert ran == [2, 4]


def test_held_markers_come_with_the_mask_or_at_the_latest(qtbot):
    got = []
    markers = HeldMarkers(lambda *m: got.append(m), latest_ms=30)
    markers.put(("a",), hold=False)
    assert got == [("a",)]
    markers.put(("b",), hold=True)
    markers.put(("c",), hold=True)                 # the newest wins
    assert got == [("a",)]
    markers.release()                              # the mask is drawn
    assert got == [("a",), ("c",)]
    markers.release()                              # nothing held
    assert len(got) == 2
    markers.put(("d",), hold=True)                 # a slow decode: drawn after latest_ms anyway
    qtbot.waitUntil(lambda: len(got) == 3, timeout=2000)
    assert got[-1] == ("d",)
    QApplication.processEvents()
