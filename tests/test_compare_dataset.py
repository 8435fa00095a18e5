"""Model → Compare on dataset… (gui/compare_dataset.py) and the review queue's confidence / agreement columns, with
two tiny seeded SAMs (different seeds) on three synthetic flood scenes, offscreen."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from floodlabel.core.evaluation.auto_prompts import box_prompt, point_prompt
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.evaluation.metrics import agreement, mask_metrics
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam_checkpoint

SCENES = (("a_lake", 120, 160, "lake"), ("b_river", 100, 150, "river"), ("c_scattered", 130, 100, "scattered"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("sam")
    return str(tiny_sam_checkpoint(d / "tiny_a.pth", seed=0)), str(tiny_sam_checkpoint(d / "tiny_b.pth", seed=1))


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "floods"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    masks = {}
    for i, (stem, h, w, kind) in enumerate(SCENES):
        image, mask = make_flood_scene(h, w, seed=i, kind=kind)
        Image.fromarray(image).save(root / "Image" / f"{stem}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "Mask" / f"{stem}.png")
        masks[stem] = mask.astype(bool)
    return open_dataset(root), masks


def make_dialog(qtbot, dataset, checkpoints, opened=None, **kw):
    from floodlabel.gui.dialogs.compare_dataset import CompareDatasetDialog

    a, b = checkpoints
    dialog = CompareDatasetDialog(dataset, [("tiny A", a), ("tiny B", b)], model_a=a, model_b=b,
                                  open_image=(lambda row, prompt: opened.append((row, prompt))) if opened is not None
                                  else None, **kw)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def double_click(table, row):
    item = table.item(row, 0)
    table.scrollToItem(item)
    pos = table.visualItemRect(item).center()
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    QTest.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def cell(table, row, col):
    return table.item(row, col).text()


def same_prompt(p, q):
    return (np.array_equal(p.points, q.points) and np.array_equal(p.labels, q.labels)
            and ((p.box is None and q.box is None) or (p.box is not None and q.box is not None
                                                       and np.array_equal(p.box, q.box))))


def test_runs_shows_the_comparison_and_a_double_click_opens_with_the_evaluation_prompt(qtbot, data, checkpoints,
                                                                                         tmp_path):
    dataset, masks = data
    a, b = checkpoints
    opened = []
    dialog = make_dialog(qtbot, dataset, checkpoints, opened, prompt="both", max_clicks=3)
    assert (dialog.combo_a.currentData(), dialog.combo_b.currentData()) == (a, b)
    progress = []
    QTest.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    dialog.task.relay.progress.connect(progress.append)  # (done, total) events
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=30000)
    assert not dialog.running() and dialog.run_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert progress and progress[-1] == (6, 6) and dialog.progress_bar.value() == 6  # 3 images x 2 models
    assert [c.prompt for c in dialog.comparisons] == ["point", "box"] and dialog.kind_combo.isVisible()
    rows = dialog.result.rows

    for kind, make_prompt in (("point", point_prompt), ("box", box_prompt)):
        dialog.kind_combo.setCurrentText(kind)
        iou = {m: {r.stem: r.iou for r in rows if r.model == m and r.prompt == kind} for m in (a, b)}
        assert set(iou[a]) == set(iou[b]) == set(masks)
        # the table's Δ mean IoU, computed here from the per-image results
        mean_a, mean_b = np.mean(list(iou[a].values())), np.mean(list(iou[b].values()))
        t = dialog.summary_table
        assert [cell(t, 0, c) for c in (0, 3)] == ["IoU", f"{mean_b - mean_a:+.3f}"]
        assert cell(t, 0, 1).startswith(f"{mean_a:.3f} ± ") and cell(t, 0, 2).startswith(f"{mean_b:.3f} ± ")
        assert cell(t, 0, 4) == f"{100 * (mean_b - mean_a) / mean_a:+.1f}%"
        dice = {m: np.mean([r.metrics.dice for r in rows if r.model == m and r.prompt == kind]) for m in (a, b)}
        assert cell(t, 1, 3) == f"{dice[b] - dice[a]:+.3f}"
        titles = [cell(t, r, 0) for r in range(t.rowCount())]
        assert ("NoC@85" in titles) == (kind == "point") and titles[-1] == "Failures (IoU < 0.5)"
        fails = [sum(v < 0.5 for v in iou[m].values()) for m in (a, b)]
        assert [cell(t, t.rowCount() - 1, c) for c in (1, 2, 3)] == [str(fails[0]), str(fails[1]),
                                                                      f"{fails[1] - fails[0]:+d}"]
        # the per-image list: Δ = IoU B - IoU A, worst first
        expected = sorted(((s, iou[b][s] - iou[a][s]) for s in masks), key=lambda x: x[1])
        d = dialog.delta_table
        assert d.rowCount() == 3
        assert [(cell(d, r, 0), cell(d, r, 3)) for r in range(3)] == [(f"{s}.png", f"{v:+.3f}") for s, v in expected]
        assert [cell(d, r, 1) for r in range(3)] == [f"{iou[a][s]:.3f}" for s, _ in expected]
        # a double-click opens that image (its row in the dataset) with the prompt both models were given
        double_click(d, 1)
        qtbot.waitUntil(lambda: len(opened) == 1)
        row, prompt = opened.pop()
        stem = expected[1][0]
        assert row == [p.stem for p in dataset.pairs].index(stem)
        assert same_prompt(prompt, make_prompt(masks[stem]))  # independently from the GT
        used = [r.used_prompt for r in rows if r.stem == stem and r.prompt == kind]
        assert len(used) == 2 and all(same_prompt(prompt, u) for u in used)  # identical for A and B
    dialog.grab().save(str(tmp_path / "compare_dataset.png"))


def test_cancel_stops_between_images(qtbot, data, checkpoints, monkeypatch):
    from floodlabel.core.evaluation import evaluate as evaluation

    dataset, _ = data
    started, release, calls = threading.Event(), threading.Event(), []
    real = evaluation._evaluate_pair

    def slow(*args, **kwargs):
        calls.append(args[2].stem)
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "_evaluate_pair", slow)
    dialog = make_dialog(qtbot, dataset, checkpoints, noc=False)
    dialog.run()
    assert started.wait(20)
    QTest.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert "Cancelling" in dialog.message_label.text() and not dialog.cancel_button.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20000)
    assert dialog.result.cancelled and calls == ["a_lake"]  # nothing started after the cancel
    assert dialog.message_label.text().startswith("Cancelled") and dialog.run_button.isEnabled()
    assert dialog.delta_table.rowCount() == 0


def test_errors_are_one_line_in_the_dialog(qtbot, data, checkpoints, tmp_path):
    dataset, _ = data
    a, _ = checkpoints
    dialog = make_dialog(qtbot, dataset, (a, a))
    dialog.run()
    assert dialog.task is None and dialog.message_label.text() == "Pick two different models to compare."
    dialog = make_dialog(qtbot, dataset, (a, str(tmp_path / "missing.pth")))
    dialog.run()
    qtbot.waitUntil(lambda: not dialog.running() and dialog.run_button.isEnabled(), timeout=10000)
    text = dialog.message_label.text()
    assert "missing.pth" in text and "\n" not in text and dialog.result is None


def test_confidence_and_agreement_columns_sort_least_first(qtbot, data):
    from floodlabel.gui.panels.image_list import COL_AGREEMENT, COL_CONFIDENCE, ImageListDock

    dataset, _ = data
    dock = ImageListDock()
    qtbot.addWidget(dock)
    dock.set_dataset(dataset)
    dock.set_confidence(0, 0.9)
    dock.set_confidence(2, 0.4)  # row 1 never scored
    assert dock.model.index(2, COL_CONFIDENCE).data() == "0.40" and dock.model.index(1, COL_CONFIDENCE).data() == "–"
    QTest.mouseClick(dock.confidence_button, Qt.MouseButton.LeftButton)
    assert dock.visible_rows() == [2, 0, 1]  # least confident first, unscored last
    dock.set_confidence(1, 0.1)
    assert dock.visible_rows() == [1, 2, 0]  # the sort stays live
    assert dock.view.isColumnHidden(COL_AGREEMENT)
    dock.set_agreement(0, 0.83)
    assert not dock.view.isColumnHidden(COL_AGREEMENT) and dock.model.index(0, COL_AGREEMENT).data() == "0.83"
    dock.set_agreement(1, 0.95)
    dock.sort_by_agreement()
    assert dock.visible_rows() == [0, 1, 2]
    dock.clear_agreement()
    assert dock.view.isColumnHidden(COL_AGREEMENT) and dock.model.index(0, COL_AGREEMENT).data() == "–"


def test_window_menu_confidence_and_agreement(qtbot, data, checkpoints, tmp_path):
    from floodlabel.core.models.session import SegmentationSession
    from floodlabel.gui.window.annotation_window import AnnotationWindow
    from floodlabel.gui.panels.image_list import COL_AGREEMENT, COL_CONFIDENCE

    dataset, masks = data
    a, b = checkpoints
    w = AnnotationWindow(dataset.root, session=SegmentationSession.open(a, cache_dir=tmp_path / "cache"))
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.controller.embedding is not None and w.controller.item is not None, timeout=20000)
        scores = []
        w.controller.scored.connect(lambda row, s: scores.append((row, s)))
        w.compare_with(b)
        qtbot.waitUntil(lambda: w.compare.session is not None, timeout=20000)
        w.compare_dataset_action.trigger()
        dialog = w.compare_dataset_dialog
        assert dialog.isVisible() and not dialog.isModal() and dialog.combo_b.currentData() == b
        # opening an image from the dialog: the prompt applies, A scores it (confidence), B compares (agreement)
        prompt = point_prompt(masks["b_river"])
        dialog.open_image(1, prompt)
        qtbot.waitUntil(lambda: any(row == 1 for row, _ in scores), timeout=20000)
        qtbot.waitUntil(lambda: w.image_list.model.row(1).agreement is not None, timeout=20000)
        assert w.image_list.model.index(1, COL_CONFIDENCE).data() == f"{[s for r, s in scores if r == 1][-1]:.2f}"
        assert same_prompt(w.controller.annotation.prompt, prompt)
        qtbot.waitUntil(lambda: w.controller.native_ready() and w.compare.result is not None
                        and w.compare.result.key[0] == 1)
        expected = agreement(w.controller.native_mask, w.compare.result.view_mask)
        qtbot.waitUntil(lambda: w.image_list.model.row(1).agreement == pytest.approx(expected))
        assert not w.image_list.view.isColumnHidden(COL_AGREEMENT)
        assert expected == pytest.approx(mask_metrics(w.controller.native_mask, w.compare.result.view_mask).iou)
    finally:
        w.close()
