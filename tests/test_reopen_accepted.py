"""An image reopened with its accepted mask shows that mask, its metrics and what Accept would save again, even when
the saved state has no prompt (a recovered mask, a brush-only accept); Clear hides it, Undo brings it back, a new
click replaces it; work saved after the accept that changed the prompt is shown as that work."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from floodlabel.core.annotation.annotation import Annotation, Stroke
from floodlabel.core.evaluation.metrics import mask_metrics
from floodlabel.gui.window.store_link import builds_on

# ------------------------------------------------------------------------------------------------ core: the rule


def test_the_saved_mask_is_the_model_mask_of_an_empty_prompt_until_a_new_step_drops_it():
    a = Annotation((20, 30))
    saved = np.zeros((20, 30), bool)
    saved[5:15, 5:25] = True
    assert not a.compose(saved).any()  # a new image: no prompt, no model mask
    a.mark_saved_mask()
    assert a.version == 0 and not a.can_undo  # not a step
    assert a.uses_saved_mask and a.has_model_mask and np.array_equal(a.compose(saved), saved)
    a.add_stroke(Stroke("erase", 2, np.array([[10.0, 10.0]])))
    assert a.uses_saved_mask  # strokes edit the saved mask
    composed = a.compose(saved)
    assert not composed[10, 10] and composed[5, 20]
    a.clear()
    assert not a.uses_saved_mask and not a.compose(saved).any()
    a.undo()
    assert a.uses_saved_mask and np.array_equal(a.compose(saved), composed)
    a.add_point(3, 3)
    assert not a.uses_saved_mask  # the decoder's mask from now on
    a.undo()
    assert a.uses_saved_mask
    a.drop_prompts()  # Escape hides it like any model mask; undo brings it back
    assert not a.uses_saved_mask and not a.has_model_mask
    a.undo()
    a.choose_candidate(1)
    assert not a.uses_saved_mask


def test_builds_on():
    accepted = {"prompt": {"points": [[1, 2]], "labels": [1]}, "candidate": None, "strokes": [{"s": 1}]}
    assert builds_on(None, accepted) and builds_on(accepted, None) and builds_on({}, accepted)
    assert builds_on(dict(accepted), accepted)
    assert builds_on({**accepted, "strokes": [{"s": 1}, {"s": 2}]}, accepted)  # strokes added after the accept
    assert not builds_on({**accepted, "strokes": []}, accepted)  # a stroke undone
    assert not builds_on({**accepted, "candidate": 2}, accepted)
    assert not builds_on({**accepted, "prompt": {}}, accepted)  # cleared after the accept


# ------------------------------------------------------------------------------------------------------------ window


@pytest.fixture
def scene(tmp_path):
    """DATA/Image/lake.png + DATA/Mask/lake.png (a synthetic lake); returns (folder, gt mask)."""
    from synthetic_scenes import make_flood_scene

    root = tmp_path / "floods"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    image, gt = make_flood_scene(96, 128, seed=3, kind="lake")
    Image.fromarray(image).save(root / "Image" / "lake.png")
    Image.fromarray(gt.astype(np.uint8) * 255).save(root / "Mask" / "lake.png")
    return root, gt


@pytest.fixture
def classic_window(window, tmp_path):
    """conftest's window factory with the classic backend."""
    from floodlabel.core.models.session import SegmentationSession

    return lambda folder: window(folder, session=SegmentationSession.open("classic", cache_dir=tmp_path / "cache"))


def accepted_mask(gt: np.ndarray) -> np.ndarray:
    """A mask unlike anything the classic backend would make: the GT's left half."""
    mask = gt.copy()
    mask[:, gt.shape[1] // 2:] = False
    return mask


def accept(folder, mask, state) -> None:
    from floodlabel.core.store.project_store import ProjectStore

    with ProjectStore(folder) as store:
        store.accept("Image/lake.png", mask, state)


def overlay(w) -> np.ndarray:
    """The prediction overlay on screen as (h, w) bool (all False when hidden)."""
    shown = w.canvas.overlay_array()
    return np.zeros(w.controller.item.original_size, bool) if shown is None else shown.astype(bool)


def wait_shown(qtbot, w):
    qtbot.waitUntil(lambda: w.controller.embedding is not None and w.controller.native_mask is not None,
                    timeout=20000)


@pytest.mark.parametrize("state", [None, {}, {"original_size": [96, 128], "prompt": {}, "strokes": []}],
                         ids=["no-state", "empty-dict", "empty-prompt"])
def test_a_mask_saved_without_a_prompt_is_shown_with_its_metrics(qtbot, classic_window, scene, state):
    folder, gt = scene
    mask = accepted_mask(gt)
    accept(folder, mask, state)
    w = classic_window(folder)
    wait_shown(qtbot, w)
    c = w.controller
    assert np.array_equal(c.native_mask, mask)  # what Accept would save again
    assert np.array_equal(overlay(w), mask)  # what the user sees
    assert w.metrics_panel.iou_label.text() == f"{mask_metrics(mask, gt).iou:.3f}"

    c.clear()
    qtbot.waitUntil(lambda: not overlay(w).any(), timeout=5000)
    assert c.native_mask is None or not c.native_mask.any()
    c.undo()
    qtbot.waitUntil(lambda: c.native_mask is not None and np.array_equal(c.native_mask, mask), timeout=5000)
    assert np.array_equal(overlay(w), mask)


def test_a_stroke_on_a_reopened_mask_edits_that_mask(qtbot, classic_window, scene):
    folder, gt = scene
    mask = accepted_mask(gt)
    accept(folder, mask, {})
    w = classic_window(folder)
    wait_shown(qtbot, w)
    ys, xs = np.nonzero(mask)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    w.controller.annotation.add_stroke(Stroke("erase", 3, np.array([[x, y]], np.float32)))
    qtbot.waitUntil(lambda: not w.controller.native_mask[y, x], timeout=5000)
    edited = w.controller.native_mask
    assert int((edited != mask).sum()) <= 50 and (edited & mask).sum() > 0.9 * mask.sum()


def test_work_that_changed_the_prompt_after_the_accept_is_shown_not_the_older_mask(qtbot, classic_window, scene):
    from floodlabel.core.store.project_store import ProjectStore

    folder, gt = scene
    mask = accepted_mask(gt)
    ys, xs = np.nonzero(gt)
    state = {"original_size": [96, 128], "prompt": {"points": [[float(xs[0]), float(ys[0])]], "labels": [1]},
             "strokes": []}
    accept(folder, mask, state)
    with ProjectStore(folder) as store:
        store.save_progress("Image/lake.png", {"original_size": [96, 128], "prompt": {}, "strokes": []})  # cleared
    w = classic_window(folder)
    qtbot.waitUntil(lambda: w.controller.embedding is not None and w.controller.annotation is not None,
                    timeout=20000)
    qtbot.wait(200)
    assert w.controller.shown_fixed_mask() is None and not overlay(w).any()


# -------------------------------------------------------------------------------------- an accept that fails


@pytest.fixture
def two_scenes(scene):
    """The lake plus a second image, so an accept moves on."""
    from synthetic_scenes import make_flood_scene

    folder, gt = scene
    image, other = make_flood_scene(96, 128, seed=4, kind="river")
    Image.fromarray(image).save(folder / "Image" / "river.png")
    Image.fromarray(other.astype(np.uint8) * 255).save(folder / "Mask" / "river.png")
    return folder, gt


def test_an_accept_that_fails_on_a_full_disk_keeps_the_edit_in_the_window(qtbot, classic_window, two_scenes,
                                                                          monkeypatch):
    import errno

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from floodlabel.core.common.errors import StoreError
    from floodlabel.core.store.project_store import ProjectStore
    from synthetic_scenes import interior_point
    from test_annotation_window import click, wait_mask

    folder, gt = two_scenes
    w = classic_window(folder)
    qtbot.waitUntil(lambda: w.controller.embedding is not None and "lake.png" in w.windowTitle(), timeout=20000)
    click(w, *interior_point(gt))
    wait_mask(qtbot, w, timeout=20000)
    w.controller.annotation.add_stroke(Stroke("paint", 4, np.array([[5.0, 5.0], [30.0, 5.0]], np.float32)))
    qtbot.waitUntil(lambda: w.controller.native_mask[5, 20], timeout=5000)
    edited, state = w.controller.native_mask.copy(), w.controller.annotation.to_dict()

    store = w.project.store.store
    real_accept = store.accept

    def disk_full(*args, **kwargs):
        raise StoreError(f"cannot save the mask: {os.strerror(errno.ENOSPC)}")

    monkeypatch.setattr(store, "accept", disk_full)
    QTest.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "river.png" in w.windowTitle(), timeout=5000)  # the window moved on
    notice = w.project_notice
    qtbot.waitUntil(lambda: notice.isVisible() and "failed" in notice.label.text(), timeout=5000)
    assert "Image/lake.png" in notice.label.text() and "press Enter" in notice.label.text()
    assert w.project.store.unsaved() == ["Image/lake.png"]
    assert w.image_list.model.row(0).status != "accepted"

    w.select_image(0)  # back to it: the edit is there, and the window says it is not saved
    qtbot.waitUntil(lambda: w.controller.row == 0 and w.controller.native_mask is not None, timeout=20000)
    assert np.array_equal(w.controller.native_mask, edited)
    assert w.controller.annotation.to_dict()["strokes"] == state["strokes"]
    assert "not saved" in w.message_label.text()

    monkeypatch.setattr(store, "accept", real_accept)  # room again: Enter saves it
    QTest.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.image_list.model.row(0).status == "accepted", timeout=5000)
    assert w.project.store.unsaved() == [] and not notice.isVisible()
    w.close()
    with ProjectStore(folder, read_only=True) as s:
        assert np.array_equal(s.record("Image/lake.png").load_mask(), edited)


def test_closing_with_an_edit_that_failed_to_save_asks_first(qtbot, classic_window, two_scenes, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from floodlabel.core.common.errors import StoreError
    from synthetic_scenes import interior_point
    from test_annotation_window import click, wait_mask

    folder, gt = two_scenes
    w = classic_window(folder)
    qtbot.waitUntil(lambda: w.controller.embedding is not None and "lake.png" in w.windowTitle(), timeout=20000)
    click(w, *interior_point(gt))
    wait_mask(qtbot, w, timeout=20000)
    store = w.project.store.store
    real_accept = store.accept
    monkeypatch.setattr(store, "accept", lambda *a, **k: (_ for _ in ()).throw(StoreError("disk full")))
    w.accept_mask()
    qtbot.waitUntil(lambda: w.project.store.failed_saves() == ["Image/lake.png"], timeout=5000)

    asked = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Cancel)
    assert not w.close() and w.isVisible() and "Image/lake.png" in asked[0]  # stays open: nothing lost
    assert w.project.store is not None

    monkeypatch.setattr(store, "accept", real_accept)
    w.select_image(0)
    qtbot.waitUntil(lambda: w.controller.row == 0 and w.controller.native_mask is not None, timeout=20000)
    w.accept_mask()
    qtbot.waitUntil(lambda: not w.project.store.unsaved(), timeout=5000)
    asked.clear()
    assert w.close() and not asked  # saved now: closes without asking
