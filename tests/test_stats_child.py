"""core.data.stats_child: the Dataset panel's statistics of a large folder, computed in a niced child process."""

from __future__ import annotations

import threading

import pytest

from floodlabel.core.common.cancel import Cancelled
from floodlabel.core.data.dataset_stats import compute_stats
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.data.stats_child import compute_stats_in_child
from tests.image_factories import make_dataset


@pytest.fixture
def dataset(tmp_path):
    sizes = {f"img{i}": (64, 48) for i in range(6)}
    return open_dataset(make_dataset(tmp_path / "data", sizes, dict(list(sizes.items())[:5])))


def test_the_child_gives_the_same_statistics_with_progress(dataset):
    seen = []
    stats = compute_stats_in_child(dataset, lambda what, done, total: seen.append((what, done, total)))
    assert stats == compute_stats(dataset)
    assert ("images", 0, 6) in seen and ("masks", 0, 5) in seen


def test_cancel_kills_the_child(dataset):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        compute_stats_in_child(dataset, cancel=cancel)


def test_the_panel_computes_a_large_folder_in_the_child(qtbot, tmp_path, monkeypatch):
    from floodlabel.gui.panels import dataset_view

    calls = []
    real = dataset_view.compute_stats_in_child
    monkeypatch.setattr(dataset_view, "compute_stats_in_child",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(dataset_view, "STATS_IN_CHILD_ABOVE", 3)
    sizes = {f"img{i}": (32, 24) for i in range(4)}
    view = dataset_view.DatasetView()
    qtbot.addWidget(view)
    view.show()
    view.set_dataset(open_dataset(make_dataset(tmp_path / "data", sizes, sizes)))
    qtbot.waitUntil(lambda: view.stats is not None, timeout=60_000)
    assert calls == [1] and view.stats.pairs == 4 and view.stats.masks_measured == 4
