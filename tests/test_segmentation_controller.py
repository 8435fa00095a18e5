"""SegmentationController on its own (no window), with the tiny seeded SAM: one trip per click on a large image."""

from __future__ import annotations

import numpy as np
import pytest

from floodlabel.core.annotation.annotation import view_size
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.models.session import SegmentationSession
from floodlabel.gui.window.segmentation_controller import SegmentationController
from tests.image_factories import make_dataset
from tiny_sam import tiny_sam_checkpoint

W, H = 3000, 2200   # over 2048: the view is smaller than the image


@pytest.fixture
def controller(qtbot, tmp_path):
    ckpt = tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=0)
    session = SegmentationSession.open(str(ckpt), cache_dir=tmp_path / "cache")
    root = make_dataset(tmp_path / "data", {"big": (W, H)}, {"big": (W, H)})
    c = SegmentationController()
    c.set_session(session)
    c.set_dataset(open_dataset(root))
    c.select(0)
    qtbot.waitUntil(lambda: c.embedding is not None and c.item is not None, timeout=60_000)
    yield c
    c.shutdown()


def test_a_click_on_a_large_image_is_one_decode_trip(qtbot, controller, monkeypatch):
    c = controller
    submits, views, scores = [], [], []
    real_submit = c.decoder.submit
    monkeypatch.setattr(c.decoder, "submit", lambda rid, fn: (submits.append(rid), real_submit(rid, fn)))
    c.mask_changed.connect(views.append)
    c.scored.connect(lambda row, s: scores.append(row))
    c.add_point(W / 2, H / 4, True)
    qtbot.waitUntil(lambda: c.native_mask is not None and c.native_ready() and not c.decoder.pending,
                    timeout=60_000)
    qtbot.wait(50)
    assert len(submits) == 1                                   # view and native masks in the same request
    assert len(views) == 1 and views[0].shape == view_size((H, W))
    assert c.native_mask.shape == (H, W) and c.metrics is not None and scores == [0]
    pred = c.session.predict(c.embedding, c.annotation.prompt, multimask=True)
    np.testing.assert_array_equal(c.native_mask, pred.mask(c.shown.candidate))
    other = (c.shown.candidate + 1) % len(c.shown.prediction)
    c.choose_candidate(other)                                   # another candidate: decoded again at native size
    assert not c.native_ready()
    qtbot.waitUntil(lambda: c.native_ready() and not c.decoder.pending, timeout=60_000)
    assert len(submits) == 2
    np.testing.assert_array_equal(c.native_mask, pred.mask(other))


def test_a_press_decodes_its_point_before_the_click_takes_it(qtbot, controller, monkeypatch):
    c = controller
    submits, views = [], []
    real_submit = c.decoder.submit
    monkeypatch.setattr(c.decoder, "submit", lambda rid, fn: (submits.append(rid), real_submit(rid, fn)))
    c.mask_changed.connect(views.append)
    c.press(W / 2, H / 4, True)
    qtbot.waitUntil(lambda: c.pressed.press is not None and len(c.pressed.press.results) == 2, timeout=60_000)  # both parts in
    assert views == [] and c.shown is None and c.annotation.prompt.is_empty  # nothing shown before the click
    c.add_point(W / 2, H / 4, True)                              # the release: its decode is already in
    assert len(submits) == 1 and len(views) == 1 and c.shown.kind == "native"
    assert c.native_ready() and c.metrics is not None           # made for the annotation's version after the click
    pred = c.session.predict(c.embedding, c.annotation.prompt, multimask=True)
    np.testing.assert_array_equal(c.native_mask, pred.mask(c.shown.candidate))

    c.press(W / 3, H / 3, False)                                 # the click comes while the press's decode runs
    c.add_point(W / 3, H / 3, False)
    qtbot.waitUntil(lambda: c.native_ready() and not c.decoder.pending and c.shown.kind == "native", timeout=60_000)
    assert len(submits) == 2 and len(c.annotation.prompt.points) == 2
    assert c.shown.prompt_key == c.prompt_key(c.annotation.prompt)


def test_a_dropped_press_puts_back_what_it_displaced(qtbot, controller):
    c = controller
    c.add_point(W / 2, H / 4, True)
    c.press(W / 3, H / 3, True)                                  # drops the click's decode in flight
    c.press_dropped()                                            # the press became a pan
    qtbot.waitUntil(lambda: c.native_ready() and not c.decoder.pending and c.shown is not None
                    and c.shown.kind == "native", timeout=60_000)
    assert c.shown.prompt_key == c.prompt_key(c.annotation.prompt) and len(c.annotation.prompt.points) == 1

    c.press(W / 3, H / 3, True)
    c.add_point(W / 5, H / 5, True)                              # another point than the press's: decoded itself
    qtbot.waitUntil(lambda: c.native_ready() and not c.decoder.pending and c.shown.kind == "native"
                    and len(c.shown.prompt_key) and c.shown.prompt_key == c.prompt_key(c.annotation.prompt),
                    timeout=60_000)
    assert c.pressed.press is None


def test_a_pointer_moving_over_a_prompt_keeps_the_decoder_warm_unseen(qtbot, controller, monkeypatch):
    from floodlabel.gui.window import segmentation_controller as sc

    c = controller
    c.add_point(W / 2, H / 4, True)
    qtbot.waitUntil(lambda: c.native_ready() and c.decoder.idle and c.shown.kind == "native", timeout=60_000)
    submits, views = [], []
    real_submit = c.decoder.submit
    monkeypatch.setattr(c.decoder, "submit", lambda rid, fn: (submits.append(rid), real_submit(rid, fn)))
    c.mask_changed.connect(views.append)
    shown, request = c.shown, c._request
    monkeypatch.setattr(sc, "WARM_AFTER_S", 0.0)
    c.hover(W / 3, H / 3)
    assert submits == [-2] and c._request == request  # a warm-up: no request of the window's is displaced
    c.hover(W / 3 + 5, H / 3)
    assert submits == [-2]  # not while one runs
    qtbot.waitUntil(lambda: c.decoder.idle, timeout=60_000)
    qtbot.wait(50)
    assert views == [] and c.shown is shown  # nothing of it is shown
    monkeypatch.setattr(sc, "WARM_AFTER_S", 3600.0)
    c.hover(W / 3, H / 2)
    assert submits == [-2]  # the decoder ran recently enough
