"""The text part of a prompt and the Instances a text prompt returns (the types every family shares)."""

import numpy as np
import pytest

from floodlabel.core.annotation.prompts import Prompt, TextPrompt
from floodlabel.core.segment.segmenter import Instances


def test_a_text_prompt_survives_the_saved_form_and_point_edits():
    p = Prompt.from_text("  flood   water ", 0.3).with_point(5, 6)
    assert p.text == TextPrompt("flood water", 0.3)
    assert p.has_geometry and not p.is_empty
    back = Prompt.from_dict(p.to_dict())
    assert back.text == p.text and back.points.tolist() == [[5.0, 6.0]]
    assert "text" not in Prompt.point(1, 2).to_dict()
    assert Prompt.from_dict(Prompt.point(1, 2).to_dict()).text is None


def test_a_text_only_prompt_has_no_geometry_but_is_not_empty():
    p = Prompt.from_text()
    assert p.text.phrase == "water" and not p.has_geometry and not p.is_empty


@pytest.mark.parametrize("phrase,threshold", [("", 0.5), ("   ", 0.5), ("water", 1.5), ("water", -0.1)])
def test_bad_text_prompts_are_refused(phrase, threshold):
    with pytest.raises(ValueError):
        TextPrompt(phrase, threshold)


def test_instances_filter_by_threshold_and_leave_out_dropped():
    masks = np.zeros((3, 4, 5), bool)
    masks[0, 0, 0] = masks[1, 1, 1] = masks[2, 2, 2] = True
    inst = Instances(masks, np.array([0.2, 0.9, 0.6], np.float32), np.zeros((3, 4), np.float32), "water")
    assert inst.above(0.5).tolist() == [1, 2]
    assert inst.union(0.5).sum() == 2 and not inst.union(0.5)[0, 0]
    assert inst.union(0.5, dropped={1}).sum() == 1 and inst.union(0.5, dropped={1})[2, 2]
    assert inst.union(0.95).shape == (4, 5) and not inst.union(0.95).any()
