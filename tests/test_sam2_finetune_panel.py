"""The Fine-tune panel with a SAM 2.1 model (tiny seeded hiera_tiny, offscreen window, synthetic scenes): a run from
the panel draws both curves and saves a small SAM 2.1 decoder checkpoint bound to its base; the window lists it, the
compare view loads it beside the base and decodes the same click with it, and a session opens it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from image_factories import mask_png, save
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from synthetic_scenes import interior_point, make_flood_scene
from tiny_sam2 import tiny_sam2_checkpoint

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.models.registry import SAM2, checkpoint_family
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.sam.decoder_checkpoint import read_decoder_checkpoint

pytestmark = pytest.mark.slow  # a SAM 2.1 encoder over five images, then training: about 30 s here

H, W = 96, 128
KINDS = ("lake", "river", "scattered")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "tiny2.pt", seed=3)


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


def test_a_panel_run_on_sam2_saves_its_decoder_and_the_compare_view_uses_it(qtbot, window, data, base, tmp_path):
    folder, masks = data
    w = window(folder, model=str(base))
    qtbot.waitUntil(lambda: w.controller.embedding is not None and w.controller.item is not None, timeout=60000)
    base_session = w.controller.session
    assert base_session.segmenter.capabilities.finetune_decoder and "sam2.1" in base_session.segmenter.architecture

    p = w.finetune_panel
    w.finetune_dock.show()
    w.finetune_dock.raise_()
    assert p.base_label.text() == "tiny2.pt" and p.gt_radio.isChecked() and p.start_button.isEnabled()
    p.epochs_spin.setValue(2)
    p.lr_spin.setValue(1e-3)
    p.batch_spin.setValue(2)
    p.val_spin.setValue(0.4)
    out = tmp_path / "out" / "tiny2-ft.pth"
    p.out_edit.setText(str(out))
    p._out_edited = True
    with qtbot.waitSignal(p.checkpoint_ready, timeout=240000) as ready:
        assert p.start()
    path, best = ready.args
    assert path == str(out) and out.is_file()

    # the curves: a loss point per step (3 training images, batch 2: 2 steps an epoch), a val IoU point per epoch
    xs, ys = p.curves.loss_curve.getData()
    assert list(xs) == [1, 2, 3, 4] and np.all(np.isfinite(ys))
    ckpt = read_decoder_checkpoint(path)
    ex, ey = p.curves.iou_curve.getData()
    assert list(ex) == [1, 2] and list(ey) == [m["val_iou"] for m in ckpt.metrics]
    assert p.curves.base_line.isVisible() and best == pytest.approx(ckpt.best_val_iou)
    assert p.phase_label.text() == "Finished" and "Best val IoU" in p.message_label.text()

    # a SAM 2.1 decoder checkpoint, small, bound to the window's base model
    assert ckpt.family == SAM2 and checkpoint_family(path) == SAM2
    assert ckpt.base.architecture == "sam2.1_hiera_tiny" and ckpt.base.model_id == base_session.model_id
    assert out.stat().st_size < 25 * 2**20 < base.stat().st_size
    assert ckpt.data["train"] == 3 and ckpt.data["val"] == 2

    # the window lists it in Model and Compare with; the compare view loads it and decodes the same click
    assert w.models.model_combo.findData(path) >= 0 and w.models.compare_combo.findData(path) >= 0
    w.compare_with(path)
    qtbot.waitUntil(lambda: w.compare.session is not None, timeout=60000)
    tuned = w.compare.session.segmenter
    assert tuned.model_id == base_session.model_id  # the same embeddings serve both
    assert tuned.weights_id != base_session.segmenter.weights_id
    state = tuned.model.sam_mask_decoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt.mask_decoder.items())
    gt = masks["0"]
    x, y = interior_point(gt)
    QTest.mouseClick(w.canvas.main_viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     w.canvas.widget_pos(x, y))
    qtbot.waitUntil(lambda: w.controller.native_mask is not None and w.compare.result is not None, timeout=30000)
    b = w.compare.result
    assert b.key[1] == repr(w.controller.annotation.prompt.to_dict())  # B decoded A's prompt
    assert b.view_mask.shape == gt.shape and b.metrics is not None
    qtbot.waitUntil(lambda: "B: IoU" in w.compare_label.text(), timeout=10000)

    # the same file opens as a model anywhere a name does, and decodes the window's embedding differently
    session = SegmentationSession.open(path)
    emb = w.controller.embedding  # the base's embedding of the image on screen
    a = base_session.predict(emb, Prompt.point(x, y)).low_res_logits
    c = session.predict(emb, Prompt.point(x, y)).low_res_logits
    assert a.shape == c.shape and not np.allclose(a, c)
    if os.environ.get("FLOODLABEL_FINETUNE_SCREENSHOT"):
        p.grab().save(os.environ["FLOODLABEL_FINETUNE_SCREENSHOT"])
