"""'About N s per image here': sessions opened by name or path record how long their encoder took on this machine
(pauses inside the checkpoint excluded), per checkpoint file and compute setting (core.models.model_speed)."""

from __future__ import annotations

import time

import numpy as np
from tiny_sam import tiny_sam_checkpoint

from floodlabel.core.models import model_speed
from floodlabel.core.models.session import SegmentationSession


def test_a_session_records_its_embedding_time_without_pauses(tmp_path):
    ckpt = tiny_sam_checkpoint(tmp_path / "tiny.pth")
    assert model_speed.embed_seconds_here(ckpt) is None
    session = SegmentationSession.open(ckpt, cache_dir=tmp_path / "emb")
    image = np.zeros((64, 96, 3), np.uint8)
    calls = []

    def pause():
        calls.append(1)
        time.sleep(0.05)

    t = time.perf_counter()
    session.embedding(image, checkpoint=pause)
    wall = time.perf_counter() - t
    first = model_speed.embed_seconds_here(ckpt, session.segmenter.compute_label)
    assert first is not None and 0 < first <= wall - 0.05 * len(calls) + 1e-3  # the pauses are not encoder time
    session.embedding(image)  # a cache hit: nothing measured
    assert model_speed.embed_seconds(session.speed_key) == first
    for i in range(8):
        model_speed.record_embed_seconds(session.speed_key, 1.0 + i)
    assert model_speed.embed_seconds(session.speed_key) == 6.0  # median of the last five (4..8)
    assert model_speed.embed_seconds_here(ckpt) == 6.0  # the default compute setting is the session's here


def test_classic_and_missing_models_have_no_figure(tmp_path):
    assert SegmentationSession.open("classic").speed_key is None
    assert model_speed.embed_seconds_here("sam2.1_hiera_tiny") is None  # not downloaded
    assert model_speed.embed_seconds_here(tmp_path / "nope.pt") is None
    (model_speed.cache_dir() / model_speed.FILE_NAME).write_text("not json")
    assert model_speed.embed_seconds("x") is None
    model_speed.record_embed_seconds("x", 2.5)
    assert model_speed.embed_seconds("x") == 2.5
