"""The official vit_b / vit_l / vit_h checkpoints are recognised from their tensor shapes.

model_download deletes a download whose architecture is not the registry's, so a wrong shape rule would throw away
every real checkpoint. Each official SAM is built by segment_anything's own build function on the meta device
(shapes only, no weights, milliseconds) and its state dict goes through infer_architecture and the registry.
"""

from __future__ import annotations

import pytest
import torch
from segment_anything import sam_model_registry

from floodlabel.core.models import registry as reg
from floodlabel.core.sam.checkpoint import KNOWN_ARCHITECTURES, build_sam, infer_architecture

# parameters of the official models (93.7M / 312.3M / 641.1M), a check that the meta build is the real thing
PARAMETERS = {"vit_b": 93_735_472, "vit_l": 312_342_832, "vit_h": 641_090_608}


def _meta_state_dict(name: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = sam_model_registry[name](checkpoint=None)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]
    state = model.state_dict()
    assert all(t.is_meta for t in state.values())
    return state


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_official_architecture_is_recognised_by_shapes(name):
    state = _meta_state_dict(name)
    arch = infer_architecture(state, f"official {name}")
    assert arch == KNOWN_ARCHITECTURES[name] and arch.name == name
    assert reg.get_spec(name).architecture == name  # what model_download checks a fresh download against


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_our_build_matches_the_official_one(name):
    """build_sam(KNOWN_ARCHITECTURES[name]) has exactly the official keys and shapes (load_sam relies on it)."""
    official = _meta_state_dict(name)
    with torch.device("meta"):
        ours = build_sam(KNOWN_ARCHITECTURES[name]).state_dict()
    assert ours.keys() == official.keys()
    assert all(ours[k].shape == official[k].shape for k in official)


def test_every_registered_model_is_an_official_architecture():
    from floodlabel.core.sam2.checkpoint import KNOWN_ARCHITECTURES as SAM2_ARCHITECTURES  # SAM 2.1: test_sam2_*

    sam = {name for name, spec in reg.MODELS.items() if spec.family == reg.SAM}
    assert sam == set(KNOWN_ARCHITECTURES) == {"vit_b", "vit_l", "vit_h"}
    assert {reg.MODELS[name].architecture for name in sam} == set(KNOWN_ARCHITECTURES)
    assert {spec.architecture for spec in reg.MODELS.values() if spec.family == reg.SAM2} == set(SAM2_ARCHITECTURES)
