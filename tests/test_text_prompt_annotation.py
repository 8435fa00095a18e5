"""The text step of an Annotation (core, no Qt): threshold filter, instance toggle, undo, how a decode and the brush
combine with the text base, and the saved state (phrase, threshold, dropped; no instance masks)."""

import json

import numpy as np
import pytest

from floodlabel.core.annotation.annotation import Annotation, Stroke
from floodlabel.core.annotation.text_step import (confidence, decodes_geometry, instance_at, kept_instances,
                                                  model_mask, text_base)
from floodlabel.core.annotation.prompts import Prompt


def _instances():
    """Three instances on a 20x30 frame: left (score .9), middle (.6), right (.3)."""
    masks = np.zeros((3, 20, 30), bool)
    masks[0, :, 0:8] = True
    masks[1, :, 11:18] = True
    masks[2, :, 22:30] = True
    return masks, np.array([0.9, 0.6, 0.3], np.float32)


def test_threshold_filters_without_the_model_and_undo_walks_back():
    masks, scores = _instances()
    ann = Annotation((20, 30))
    ann.run_text("water", 0.5)
    base = text_base(masks, scores, ann.text.threshold, ann.dropped)
    assert base[:, 0:8].all() and base[:, 11:18].all() and not base[:, 22:].any()
    ann.set_text_threshold(0.2)
    assert text_base(masks, scores, ann.text.threshold, ann.dropped)[:, 22:].all()
    ann.set_text_threshold(0.95)
    assert not text_base(masks, scores, ann.text.threshold, ann.dropped).any()
    assert ann.undo() and ann.text.threshold == 0.2
    assert ann.undo() and ann.text.threshold == 0.5
    assert ann.undo() and ann.text is None and not ann.can_undo
    assert ann.redo() and ann.text.phrase == "water"


def test_instance_toggle_drops_and_keeps_and_undo_restores():
    masks, scores = _instances()
    ann = Annotation((40, 60))  # original frame twice the instances' frame
    ann.run_text("flood water", 0.5)
    i = instance_at(masks, scores, ann.text.threshold, 30.0, 10.0, ann.original_size)  # x=30 -> column 15
    assert i == 1
    ann.toggle_instance(i)
    assert ann.dropped == {1}
    base = text_base(masks, scores, ann.text.threshold, ann.dropped)
    assert not base[:, 11:18].any() and base[:, 0:8].all()
    assert instance_at(masks, scores, 0.5, 30.0, 10.0, ann.original_size) == 1  # a dropped one can be kept again
    ann.toggle_instance(1)
    assert ann.dropped == frozenset()
    ann.undo()
    assert ann.dropped == {1}
    assert instance_at(masks, scores, 0.5, 41.0, 10.0, ann.original_size) is None  # between instances
    assert instance_at(masks, scores, 0.5, 50.0, 10.0, ann.original_size) is None  # below the threshold


def test_decode_adds_negatives_and_eraser_remove():
    masks, scores = _instances()
    ann = Annotation((20, 30))
    ann.run_text("water", 0.5)
    assert not decodes_geometry(ann.prompt)
    ann.add_point(5, 5, positive=False)  # a right-click on the left instance removes it
    assert not decodes_geometry(ann.prompt)
    base = text_base(masks, scores, ann.text.threshold, ann.dropped, ann.prompt, ann.original_size)
    assert not base[:, 0:8].any() and base[:, 11:18].all()
    ann.add_point(25, 5)
    assert decodes_geometry(ann.prompt)
    decode = np.zeros((20, 30), bool)
    decode[0:5, 20:30] = True
    composed = ann.compose(model_mask(base, decode))
    assert composed[0:5, 22:].all() and composed[:, 11:18].all() and not composed[10:, 22:].any()
    ann.add_stroke(Stroke("erase", 2.0, np.array([[14, 10]], np.float32)))
    assert not ann.compose(model_mask(base, decode))[10, 14]
    ann.undo(), ann.undo(), ann.undo()  # stroke, positive point, negative point
    assert text_base(masks, scores, 0.5, ann.dropped, ann.prompt, ann.original_size)[:, 0:8].all()
    assert model_mask(None, None) is None and model_mask(base, None) is base


def test_saved_state_keeps_phrase_threshold_and_dropped_only():
    ann = Annotation((20, 30))
    ann.run_text("water", 0.4)
    ann.toggle_instance(2)
    ann.add_point(3, 4)
    state = ann.to_dict()
    assert state["prompt"]["text"] == {"phrase": "water", "threshold": 0.4} and state["dropped"] == [2]
    assert len(json.dumps(state)) < 300
    back = Annotation.from_dict(json.loads(json.dumps(state)))
    assert back.text == ann.text and back.dropped == {2} and back.prompt_points_count == 1
    assert "dropped" not in Annotation((5, 5)).to_dict()


def test_escape_drops_text_and_bad_input_is_refused():
    ann = Annotation((20, 30))
    with pytest.raises(ValueError):
        ann.toggle_instance(0)
    with pytest.raises(ValueError):
        ann.run_text("  ", 0.5)
    with pytest.raises(ValueError):
        ann.run_text("water", 1.5)
    ann.run_text("water", 0.5)
    v = ann.version
    ann.run_text("water", 0.5)
    ann.set_text_threshold(0.5)
    assert ann.version == v  # no-ops
    ann.toggle_instance(0)
    ann.drop_prompts()
    assert ann.text is None and ann.dropped == frozenset() and not ann.has_model_mask


def test_confidence_is_the_mean_score_of_kept_instances():
    _, scores = _instances()
    assert confidence(scores, 0.5) == pytest.approx(0.75)
    assert confidence(scores, 0.5, {0}) == pytest.approx(0.6)
    assert confidence(scores, 0.95) == 0.0
    assert list(kept_instances(scores, 0.0, {1})) == [0, 2]
