"""core/sam3's builder against Meta's: at SAM 3's own sizes, `build_sam3_model(OFFICIAL)` has exactly the tensors
(names and shapes) of `sam3.model_builder.build_sam3_image_model(enable_inst_interactivity=True)`, so the official
checkpoint loads into it as it loads into Meta's. Both are built on torch's "meta" device (no memory, no weights):
Meta's builder makes a few tensors on "cuda" explicitly, which is redirected to "meta" here, and the drop-path
rates (read back as numbers) are made on the CPU."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sam3")

from floodlabel.core.sam3.architecture import OFFICIAL, build_sam3_model, infer_architecture  # noqa: E402
from floodlabel.core.sam3.vocabulary import bpe_path  # noqa: E402


def _on_meta(fn):
    real = {name: getattr(torch, name) for name in ("zeros", "arange", "linspace")}

    def redirect(f):
        def call(*args, **kwargs):
            if kwargs.get("device") == "cuda":
                kwargs["device"] = "meta"
            elif f is real["linspace"]:  # drop-path rates, read back with .item()
                kwargs.setdefault("device", "cpu")
            return f(*args, **kwargs)
        return call

    try:
        for name, f in real.items():
            setattr(torch, name, redirect(f))
        with torch.device("meta"):
            return fn()
    finally:
        for name, f in real.items():
            setattr(torch, name, f)


@pytest.mark.slow
def test_official_sizes_build_meta_s_model():
    from sam3.model_builder import build_sam3_image_model

    ours = _on_meta(lambda: build_sam3_model(OFFICIAL, bpe_path())).state_dict()
    theirs = _on_meta(lambda: build_sam3_image_model(bpe_path=bpe_path(), device="cpu", load_from_HF=False,
                                                      enable_inst_interactivity=True)).state_dict()
    assert sorted(ours) == sorted(theirs)
    assert [k for k in ours if ours[k].shape != theirs[k].shape] == []
    assert infer_architecture(ours) == OFFICIAL
    params = sum(v.numel() for k, v in ours.items())
    assert 0.8e9 < params < 0.9e9, params


def test_building_leaves_the_threads_autocast_state_as_it_was():
    """sam3's tracker enters a CUDA bf16 autocast in its __init__ and never leaves it; the builder leaves it, so a
    SAM 2.1 fine-tuning run later on the same thread learns as it does alone (it learned half as much in the suite)."""
    from tiny_sam3 import tiny_sam3

    before = [(d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cuda", "cpu")]
    tiny_sam3(0)
    assert [(d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cuda", "cpu")] == before
