"""The dataset overview: statistics computed in a worker while shown, figures and plots filled, stale runs ignored."""

from __future__ import annotations

import numpy as np
import pytest

import floodlabel.gui.panels.dataset_view as dataset_view
from floodlabel.core.data.datasets import open_dataset
from floodlabel.gui.panels.dataset_view import DatasetView
from tests.image_factories import make_dataset


@pytest.fixture
def view(qtbot):
    v = DatasetView()
    qtbot.addWidget(v)
    v.resize(700, 520)
    return v


@pytest.fixture
def dataset(tmp_path):
    sizes = {"1": (40, 30), "2": (40, 30), "3": (30, 40), "4": (64, 48)}
    return open_dataset(make_dataset(tmp_path / "ds", images=sizes, masks={k: sizes[k] for k in "123"}))


def test_figures_and_plots_once_shown(qtbot, view, dataset):
    view.set_dataset(dataset)
    assert not view.is_computing()  # hidden: nothing runs yet
    with qtbot.waitSignal(view.stats_ready, timeout=10_000):
        view.show()
    s = view.stats
    assert s is not None and s.images == 4 and s.pairs == 3
    assert view.figure_labels["Images"].text() == "4"
    assert view.figure_labels["Problems"].text() == "1"  # image 4 has no mask
    assert view.figure_labels["Water ratio mean"].text() == "50.0 %"  # make_dataset masks are half water
    assert view.figure_labels["Water ratio median"].text() == "50.0 %"
    assert view.figure_labels["Water ratio pooled"].text().startswith("50.0 %")
    assert "3 unique" in view.figure_labels["Image sizes"].text()
    heights = view.histogram_bars.opts["height"]
    assert int(np.sum(heights)) == 3 and int(np.argmax(heights)) == 10  # all in the 50-55 % bin
    xs, ys = view.size_points.getData()
    assert sorted(zip(xs.tolist(), ys.tolist())) == [(30, 40), (40, 30), (40, 30), (64, 48)]


def test_replaced_dataset_and_failures(qtbot, view, dataset, monkeypatch, tmp_path):
    view.show()
    other = open_dataset(make_dataset(tmp_path / "other", images={"a": (20, 20)}, masks={"a": (20, 20)}))
    view.set_dataset(dataset)
    with qtbot.waitSignal(view.stats_ready, timeout=10_000) as blocker:
        view.set_dataset(other)  # the first run is abandoned and its result, if any, ignored
    assert blocker.args[0].images == 1 and view.figure_labels["Images"].text() == "1"

    def broken(ds, progress=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dataset_view, "compute_stats", broken)
    view.set_dataset(dataset)
    qtbot.waitUntil(lambda: "failed" in view.status_label.text(), timeout=10_000)
    assert view.status_label.text() == "Statistics failed: RuntimeError: disk on fire"
    assert view.figure_labels["Images"].text() == "–"
    view.set_dataset(None)
    assert view.status_label.text() == "No dataset"
