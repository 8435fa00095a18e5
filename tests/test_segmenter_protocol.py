"""Every model family declares what it can do (segment.Capabilities) and the protocol's ids and label, so the window,
store, evaluation and training ask the protocol, never a family's class or a `hasattr`."""

from __future__ import annotations

import inspect

import pytest
from tiny_sam import tiny_sam_checkpoint

from floodlabel.core.classic.backend import ClassicSegmenter
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.sam.backend import SamSegmenter
from floodlabel.core.segment.segmenter import Capabilities, Segmenter

MEMBERS = [name for name, _ in inspect.getmembers(Segmenter) if not name.startswith("_")] + ["model_id"]


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> dict[str, Segmenter]:
    checkpoint = tiny_sam_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", seed=1)
    return {"classic": ClassicSegmenter(), "sam": SamSegmenter.from_checkpoint(checkpoint)}


def test_every_family_implements_the_whole_protocol(families):
    assert {"capabilities", "cache_model_id", "weights_id", "compute_label", "embed", "predict"} <= set(MEMBERS)
    for name, segmenter in families.items():
        missing = [m for m in MEMBERS if not hasattr(segmenter, m)]
        assert not missing, f"{name} lacks {missing}"
        assert isinstance(segmenter, Segmenter)
        assert isinstance(segmenter.capabilities, Capabilities)
        assert segmenter.model_id and segmenter.cache_model_id.startswith(segmenter.model_id)
        assert segmenter.weights_id and segmenter.compute_label


def test_capabilities_say_what_each_family_does(families):
    sam, classic = families["sam"].capabilities, families["classic"].capabilities
    assert sam == Capabilities(cache_embeddings=True, fast_decode=True, auto_masks=True, finetune_decoder=True)
    assert classic == Capabilities()  # GrabCut: a resize to embed, seconds per prompt, no AMG, nothing to train


def test_the_session_caches_only_what_the_family_says_is_worth_it(families, tmp_path):
    assert SegmentationSession(families["classic"], cache=object()).cache is None
    cache = object()
    assert SegmentationSession(families["sam"], cache=cache).cache is cache
    assert SegmentationSession(families["sam"]).cache_model_id == families["sam"].cache_model_id
