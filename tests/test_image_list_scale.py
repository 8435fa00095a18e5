"""The image list with thousands of rows: filling, sorting and filtering cost no Python call per row comparison, the
header scan's bookkeeping is per chunk, not per row, and nothing slow runs on the UI thread before the rows show.
(No timing here: benchmarks/bench_open_folder.py measures the window on 10,000 images.)"""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from floodlabel.core.data.datasets import FloodDataset, ImagePair
from floodlabel.gui.panels import image_list, size_scan
from floodlabel.gui.panels.image_list import COL_IOU, COL_PROBLEM, COL_SIZE, ImageListDock, ImageListModel

N = 2000


def _dataset(n: int) -> FloodDataset:
    """n pairs of files that do not exist, sizes cached (no disk access); every 100th mask has another size."""
    root = Path("/nonexistent/ds")
    pairs = [ImagePair(str(i), root / "Image" / f"{i}.jpg", root / "Mask" / f"{i}.png") for i in range(n)]
    ds = FloodDataset(root=root, image_dir=root / "Image", mask_dir=root / "Mask", pairs=pairs,
                      masks_without_images=[])
    for i, p in enumerate(pairs):
        ds._sizes[p.image] = (64, 48)
        ds._sizes[p.mask] = (64, 48) if i % 100 else (32, 24)
    return ds


@pytest.fixture
def dock(qtbot):
    d = ImageListDock()
    qtbot.addWidget(d)
    d.resize(520, 400)
    d.show()
    return d


def _count_calls(monkeypatch, owner, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_every_row_is_listed_and_the_scan_starts_after_the_rows(qtbot, dock):
    dock.set_dataset(_dataset(N))
    assert dock.proxy.rowCount() == N and dock.visible_rows() == list(range(N))
    assert dock.scanning() and not dock._scanner.started  # queued: the rows are painted first
    qtbot.waitUntil(lambda: not dock.scanning(), timeout=20_000)
    assert dock.model.index(N - 1, COL_SIZE).data() == "64×48"
    assert dock.model.index(100, COL_PROBLEM).data() == "size mismatch 64x48 vs 32x24"
    assert dock.summary_label.text() == f"{N:,} images · {N // 100:,} with problems"


def test_sorting_and_filtering_make_no_python_call_per_comparison(qtbot, monkeypatch):
    data_calls = _count_calls(monkeypatch, ImageListModel, "data")  # before the model exists: Qt looks it up once
    dock = ImageListDock()
    qtbot.addWidget(dock)
    dock.resize(520, 400)
    dock.show()
    dock.set_dataset(_dataset(N))
    for row in range(0, N, 2):
        dock.set_iou(row, (row * 7919 % 997) / 997)
    qtbot.wait(10)
    data_calls[0] = 0
    dock.sort_by_iou()
    dock.view.sortByColumn(COL_IOU, Qt.SortOrder.DescendingOrder)
    dock.filter_edit.setText("7")
    dock.filter_edit.setText("")
    dock.sort_by_iou()
    # a QSortFilterProxyModel over this Python model asks data() twice per comparison: ~40,000 calls per sort
    assert data_calls[0] < 2_000, data_calls  # what painting the visible cells asks, whatever N
    order = dock.visible_rows()
    ious = [dock.model.row(r).iou for r in order]
    assert ious[: N // 2] == sorted(ious[: N // 2]) and all(v is None for v in ious[N // 2:])
    assert order[N // 2:] == list(range(1, N, 2))  # unknown IoU last, in dataset order


def test_a_scan_chunk_updates_the_problem_count_without_visiting_every_row(qtbot, dock, monkeypatch):
    dock.set_dataset(_dataset(N))
    problem_calls = _count_calls(monkeypatch, image_list._Row, "problem")
    dock.model.set_sizes([(row, (64, 48), (32, 24), None) for row in range(size_scan.SIZE_CHUNK)])
    dock._update_summary()
    assert dock.model.error_count() == size_scan.SIZE_CHUNK
    assert problem_calls[0] <= 4 * size_scan.SIZE_CHUNK  # before: every row, on every chunk
    dock.set_problem(0, "unreadable: broken")
    dock.set_problem(1, None)
    assert dock.model.error_count() == size_scan.SIZE_CHUNK


def test_set_statuses_sets_many_rows_at_once(dock):
    dock.set_dataset(_dataset(10))
    dock.set_statuses({2: "accepted", 7: "in progress"})
    assert [dock.model.row(r).status for r in (0, 2, 7)] == ["new", "accepted", "in progress"]
    with pytest.raises(ValueError):
        dock.model.set_statuses({1: "done"})


def test_the_model_is_opened_in_the_worker_not_on_the_ui_thread(qtbot, monkeypatch):
    """The engine imports torch (~2 s): SegmentationSession is looked up, and so imported, in the worker."""
    from floodlabel.gui.window.segmentation_controller import SegmentationController

    looked_up: list[bool] = []

    class FakeSession:
        @staticmethod
        def open(model):
            raise RuntimeError(f"no model {model} in this test")

    def __getattr__(name):  # noqa: N807 (module __getattr__)
        if name != "SegmentationSession":
            raise AttributeError(name)
        looked_up.append(threading.current_thread() is threading.main_thread())
        return FakeSession

    fake = types.ModuleType("floodlabel.core.models.session")
    fake.__getattr__ = __getattr__
    monkeypatch.setitem(sys.modules, "floodlabel.core.models.session", fake)
    monkeypatch.setattr("floodlabel.core.models.session", fake, raising=False)
    controller = SegmentationController()
    failures: list[str] = []
    controller.session_failed.connect(failures.append)
    controller.open_session("x")
    assert looked_up == []  # nothing yet: the worker starts on the next turn of the event loop
    qtbot.waitUntil(lambda: bool(failures), timeout=10_000)
    assert looked_up == [False] and "no model x" in failures[0]
    controller.shutdown()


def test_when_on_screen_waits_for_the_shown_window_and_not_for_a_hidden_one(qtbot):
    from PySide6.QtWidgets import QWidget

    from floodlabel.gui.workers.on_screen import when_on_screen

    calls: list[str] = []
    hidden, shown = QWidget(), QWidget()
    qtbot.addWidget(hidden)
    qtbot.addWidget(shown)
    when_on_screen(hidden, hidden, lambda: calls.append("hidden"))
    when_on_screen(shown, None, lambda: calls.append("no widget"))
    shown.show()
    when_on_screen(shown, shown, lambda: calls.append(f"shown, exposed {shown.windowHandle().isExposed()}"))
    assert calls == []  # never at once: from the event loop
    qtbot.waitUntil(lambda: len(calls) == 3, timeout=5_000)
    assert sorted(calls) == ["hidden", "no widget", "shown, exposed True"]
