"""The fine-tune panel (offscreen Qt) with the tiny seeded SAM on synthetic scenes: a short run from the dataset's
ground truth draws both curves and hands over a checkpoint; cancel stops a run; the classic base cannot start;
the project's accepted masks with their recorded clicks train too."""

from __future__ import annotations

import os

import numpy as np
import pytest
from image_factories import mask_png, save
from PySide6.QtWidgets import QApplication
from synthetic_scenes import interior_point, make_flood_scene
from tiny_sam import tiny_sam_checkpoint

from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.store.project_store import ProjectStore
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam.decoder_checkpoint import read_decoder_checkpoint
from floodlabel.gui.panels.finetune_panel import FinetunePanel

H, W = 96, 128
KINDS = ("lake", "river", "scattered")
SCREENSHOT = os.environ.get("FLOODLABEL_FINETUNE_SCREENSHOT")  # a path: save the panel after the GT run there


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth", seed=3)


@pytest.fixture
def data(tmp_path):
    """Image/ + Mask/ with five small synthetic scenes; returns (folder, {stem: mask})."""
    root = tmp_path / "floods"
    masks = {}
    for i in range(5):
        image, mask = make_flood_scene(H, W, seed=i, kind=KINDS[i % 3])
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
        masks[str(i)] = mask
    return root, masks


@pytest.fixture
def panel(qtbot):
    made = []

    def make():
        p = FinetunePanel()
        qtbot.addWidget(p)
        p.resize(380, 720)
        p.show()
        made.append(p)
        return p

    yield make
    for p in made:
        assert p.shutdown(30)


def settings(panel, epochs, tmp_path):
    panel.epochs_spin.setValue(epochs)
    panel.lr_spin.setValue(1e-3)
    panel.batch_spin.setValue(2)
    panel.val_spin.setValue(0.4)
    panel.out_edit.setText(str(tmp_path / "out" / "ft.pth"))
    panel._out_edited = True


def test_a_short_run_on_the_dataset_gt_draws_both_curves_and_emits_the_checkpoint(qtbot, panel, data, checkpoint,
                                                                                  tmp_path):
    folder, _ = data
    p = panel()
    p.set_context(open_dataset(folder), None, str(checkpoint))
    assert p.gt_radio.isChecked() and p.start_button.isEnabled()  # no project: the dataset's masks are chosen
    assert p.base_label.text() == "tiny.pth" and "(5)" in p.gt_radio.text()
    assert "checkpoints" in p.out_edit.text() and "tiny-ft-" in p.out_edit.text()
    settings(p, 2, tmp_path)
    with qtbot.waitSignal(p.checkpoint_ready, timeout=30000) as ready:
        assert p.start()
        assert not p.start_button.isEnabled() and p.cancel_button.isEnabled() and not p.epochs_spin.isEnabled()
    path, best = ready.args
    assert os.path.isfile(path) and path == str(tmp_path / "out" / "ft.pth")
    ckpt = read_decoder_checkpoint(path)
    assert ckpt.data["train"] == 3 and ckpt.data["val"] == 2 and len(ckpt.metrics) == 2
    assert best == pytest.approx(ckpt.best_val_iou)
    # the curves: a loss point per step (3 training images, batch 2: 2 steps an epoch), a val IoU point per epoch
    xs, ys = p.curves.loss_curve.getData()
    assert list(xs) == [1, 2, 3, 4] and np.all(np.isfinite(ys))
    ex, ey = p.curves.iou_curve.getData()
    assert list(ex) == [1, 2] and list(ey) == [m["val_iou"] for m in ckpt.metrics]
    assert p.curves.base_line.isVisible() and p.curves.base_line.value() == pytest.approx(p.result.base_val_iou)
    assert len(p.curves.epoch_loss_curve.getData()[0]) == 2
    assert "Best val IoU" in p.message_label.text() and path in p.message_label.text()
    assert p.phase_label.text() == "Finished" and p.start_button.isEnabled() and not p.cancel_button.isEnabled()
    if SCREENSHOT:
        QApplication.processEvents()
        p.grab().save(SCREENSHOT)


def test_cancel_stops_a_run(qtbot, panel, data, checkpoint, tmp_path):
    folder, _ = data
    p = panel()
    p.set_context(open_dataset(folder), None, str(checkpoint))
    settings(p, 200, tmp_path)
    assert p.start()
    qtbot.waitUntil(lambda: len(p.curves.steps) >= 1, timeout=20000)
    p.cancel()
    assert not p.cancel_button.isEnabled() and p.phase_label.text() == "Cancelling…"
    qtbot.waitUntil(lambda: p.result is not None, timeout=20000)
    assert p.job.join(5)
    assert p.result.stopped == "cancelled" and len(p.result.metrics) < 200
    assert p.phase_label.text() == "Cancelled" and p.start_button.isEnabled()


def test_classic_base_and_missing_masks_cannot_start(qtbot, panel, data, tmp_path, checkpoint):
    folder, _ = data
    p = panel()
    p.set_context(open_dataset(folder), None, "classic")
    assert not p.start_button.isEnabled()
    assert "classic" in p.message_label.text() and "classic" in p.base_label.text()
    assert not p.start() and p.job is None
    p.set_context(open_dataset(folder), None, str(checkpoint))  # a SAM model again: the message goes
    assert p.message_label.text() == "" and p.start_button.isEnabled()
    p.accepted_radio.click()  # no project: nothing accepted
    assert not p.start_button.isEnabled() and "accept" in p.start_button.toolTip()
    p.set_context(None, None, None)
    assert not p.start_button.isEnabled() and p.base_label.text() == "no model"


def test_accepted_masks_with_their_recorded_prompts(qtbot, panel, data, checkpoint, tmp_path):
    folder, masks = data
    store = ProjectStore(folder)
    try:
        for stem in ("0", "1", "2"):
            x, y = interior_point(masks[stem])
            prompt = Prompt.point(x, y) if stem != "2" else Prompt.from_box((2, 2, W - 3, H - 3))
            store.accept(f"Image/{stem}.png", masks[stem], {"prompt": prompt.to_dict(), "strokes": []})
        store.save_progress("Image/3.png", {"prompt": Prompt.point(5, 5).to_dict()})  # in progress: not used
        p = panel()
        p.set_context(open_dataset(folder), store, str(checkpoint))
        assert p.accepted_radio.isChecked() and "(3)" in p.accepted_radio.text()
        assert str(store.project_dir / "checkpoints") in p.out_edit.text()
        settings(p, 2, tmp_path)
        p.val_spin.setValue(0.3)
        with qtbot.waitSignal(p.checkpoint_ready, timeout=30000) as ready:
            assert p.start()
        items = p.job.items()
        assert [i.name for i in items] == ["Image/0.png", "Image/1.png", "Image/2.png"]  # named by their path in DATA
        assert all(len(i.prompts) == 1 for i in items) and items[2].prompts[0].box is not None
        ckpt = read_decoder_checkpoint(ready.args[0])
        assert ckpt.data["train"] + ckpt.data["val"] == 3 and len(ckpt.metrics) == 2
    finally:
        store.close()


def test_too_few_usable_accepted_masks_is_one_line_in_the_panel(qtbot, panel, data, checkpoint):
    folder, masks = data
    store = ProjectStore(folder)
    try:
        for stem in ("0", "1"):
            store.accept(f"Image/{stem}.png", masks[stem], {"prompt": Prompt().to_dict()})
        store.record("Image/1.png").mask_path.unlink()  # deleted outside FloodLabel
        p = panel()
        p.set_context(None, store, str(checkpoint))
        assert p.accepted_radio.isChecked() and p.start_button.isEnabled()
        assert p.start()
        qtbot.waitUntil(lambda: not p.is_running(), timeout=10000)
        text = p.message_label.text()
        assert p.phase_label.text() == "Failed" and "\n" not in text
        assert "at least 2 usable masks, found 1" in text and "mask file is missing" in text
        assert p.start_button.isEnabled() and p.result is None
    finally:
        store.close()
