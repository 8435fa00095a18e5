"""Annotation model: steps, undo/redo, version/listeners, stroke layers, compose, persistence, view size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from floodlabel.core.annotation.annotation import ERASED, PAINTED, Annotation, Stroke, view_size
from floodlabel.core.annotation.prompts import Prompt


def _paint(x, y, r=3.0, mode="paint"):
    return Stroke(mode, r, np.array([[x, y]], np.float32))


def _line(x0, y0, x1, y1, r=2.0, mode="paint"):
    return Stroke(mode, r, np.array([[x0, y0], [x1, y1]], np.float32))


# ---- view size ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("orig, expected", [
    ((100, 200), (100, 200)),          # small: never upscaled
    ((2048, 1000), (2048, 1000)),      # exactly the cap
    ((4000, 5000), (1638, 2048)),      # landscape: 4000 * 2048 / 5000 = 1638.4
    ((5000, 4000), (2048, 1638)),      # portrait
    ((3000, 4097), (1500, 2048)),      # 3000 * 2048 / 4097 = 1499.63 -> 1500 (rounded, not floored)
    ((1, 10000), (1, 2048)),           # never below 1 px
])
def test_view_size(orig, expected):
    assert view_size(orig) == expected


def test_view_size_custom_cap_and_invalid():
    assert view_size((1000, 500), max_side=100) == (100, 50)
    with pytest.raises(ValueError):
        view_size((0, 10))


# ---- steps and undo/redo ----------------------------------------------------------------------------------
def test_every_step_undo_redo():
    a = Annotation((100, 120))
    s1 = _paint(10, 10)
    steps = [
        lambda: a.add_point(5, 6, True),
        lambda: a.add_point(7, 8, False),
        lambda: a.set_box((50, 40, 10, 20)),
        lambda: a.choose_candidate(2),
        lambda: a.add_stroke(s1),
        lambda: a.drop_prompts(),
        lambda: a.add_point(1, 2),
        lambda: a.clear(),
    ]
    snaps = [(a.prompt.to_dict(), a.candidate, a.strokes)]
    for step in steps:
        step()
        snaps.append((a.prompt.to_dict(), a.candidate, a.strokes))
    # spot checks of each step's effect
    assert snaps[2][0]["labels"] == [1, 0]
    assert snaps[3][0]["box"] == [10.0, 20.0, 50.0, 40.0]
    assert snaps[4][1] == 2
    assert snaps[5][2] == (s1,)
    assert snaps[6] == ({"points": [], "labels": [], "box": None}, None, (s1,))   # Escape keeps strokes
    assert snaps[8] == ({"points": [], "labels": [], "box": None}, None, ())      # clear: everything
    assert a.click_count == 3
    for i in range(len(steps), 0, -1):
        assert a.undo()
        assert (a.prompt.to_dict(), a.candidate, a.strokes) == snaps[i - 1]
    assert not a.can_undo and not a.undo()
    for i in range(1, len(steps) + 1):
        assert a.redo()
        assert (a.prompt.to_dict(), a.candidate, a.strokes) == snaps[i]
    assert not a.can_redo and not a.redo()
    assert a.click_count == 3   # effort spent: undo/redo change nothing


def test_new_step_after_undo_drops_redo_branch():
    a = Annotation((50, 50))
    a.add_point(1, 1)
    a.add_point(2, 2)
    a.undo()
    assert a.can_redo
    a.add_point(3, 3)
    assert not a.can_redo and not a.redo()
    assert a.prompt.points.tolist() == [[1, 1], [3, 3]]
    assert a.undo() and a.undo() and not a.can_undo
    assert a.prompt.is_empty


def test_point_and_box_reset_candidate_and_noops():
    a = Annotation((50, 50))
    a.add_point(1, 1)
    a.choose_candidate(1)
    a.add_point(2, 2)
    assert a.candidate is None
    a.choose_candidate(1)
    a.set_box((0, 0, 9, 9))
    assert a.candidate is None
    v = a.version
    a.set_box((9, 9, 0, 0))          # same box once normalised
    a.choose_candidate(None)         # unchanged
    b = Annotation((50, 50))
    b.drop_prompts()
    b.clear()
    assert a.version == v and b.version == 0 and not b.can_undo
    a.set_box(None)
    assert a.prompt.box is None and a.version == v + 1
    with pytest.raises(ValueError):
        a.choose_candidate(-1)


def test_version_and_listeners():
    a = Annotation((50, 50))
    seen = []
    a.add_listener(lambda ann: seen.append((ann.version, len(ann.prompt.points))))
    a.add_point(1, 1)
    a.add_stroke(_paint(5, 5))
    a.undo()
    a.redo()
    a.undo()
    a.undo()
    assert [v for v, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert [n for _, n in seen] == [1, 1, 1, 1, 1, 0]   # listeners see the state after the change
    assert a.version == 6
    a.undo()   # nothing to undo: no change, no call
    assert a.version == 6 and len(seen) == 6


def test_history_is_capped():
    from floodlabel.core.annotation import annotation as mod
    a = Annotation((50, 50))
    for i in range(mod.HISTORY_LIMIT + 20):
        a.add_point(i % 50, 0)
    n = 0
    while a.undo():
        n += 1
    assert n == mod.HISTORY_LIMIT
    assert len(a.prompt.points) == 20
    assert a.click_count == mod.HISTORY_LIMIT + 20


def test_prompt_with_box_is_not_a_step():
    a = Annotation((50, 50))
    a.add_point(3, 4, False)
    v = a.version
    p = a.prompt_with_box((10, 10, 2, 2))
    assert isinstance(p, Prompt)
    assert p.points.tolist() == [[3, 4]] and p.labels.tolist() == [0] and p.box.tolist() == [2, 2, 10, 10]
    assert a.prompt.box is None and a.version == v


def test_counts_and_has_model_mask():
    a = Annotation((50, 50))
    assert not a.has_model_mask and a.prompt_points_count == 0
    a.add_point(1, 1)
    a.add_point(2, 2)
    assert a.has_model_mask and a.prompt_points_count == 2
    a.undo()
    assert a.prompt_points_count == 1 and a.click_count == 2
    a.clear()
    assert not a.has_model_mask
    a.undo()
    assert a.has_model_mask


def test_stroke_validation():
    with pytest.raises(ValueError):
        Stroke("smudge", 2, np.zeros((1, 2)))
    with pytest.raises(ValueError):
        Stroke("paint", 0, np.zeros((1, 2)))
    with pytest.raises(ValueError):
        Stroke("paint", 2, np.zeros((0, 2)))
    s = Stroke("erase", 2, [[1, 2], [3, 4]])
    assert s.points.dtype == np.float32 and s.points.shape == (2, 2) and not s.points.flags.writeable
    with pytest.raises(TypeError):
        Annotation((5, 5)).add_stroke("not a stroke")


# ---- stroke layer -----------------------------------------------------------------------------------------
def test_stroke_layer_two_sizes_scaled():
    a = Annotation((400, 800))          # H=400, W=800
    a.add_stroke(_paint(400, 200, r=20))
    full = a.stroke_layer((400, 800))
    half = a.stroke_layer((100, 200))   # x and y both scaled by 1/4; radius 5
    assert full.dtype == np.uint8 and full.shape == (400, 800)
    assert half.shape == (100, 200)
    assert full[200, 400] == PAINTED and full[200, 418] == PAINTED and full[200, 425] == 0
    assert half[50, 100] == PAINTED and half[50, 104] == PAINTED and half[50, 108] == 0
    area_full = np.count_nonzero(full)
    area_half = np.count_nonzero(half)
    assert area_full == pytest.approx(np.pi * 20 ** 2, rel=0.1)
    assert area_half == pytest.approx(np.pi * 5 ** 2, rel=0.2)


def test_stroke_layer_anisotropic_and_min_radius():
    a = Annotation((1000, 1000))
    a.add_stroke(_line(100, 500, 900, 500, r=1.0))
    small = a.stroke_layer((50, 100))   # radius 1 * 0.075 -> at least 1 px
    rows = np.nonzero(small.any(axis=1))[0]
    cols = np.nonzero(small.any(axis=0))[0]
    assert rows.min() >= 23 and rows.max() <= 27   # y 500 -> 25
    assert cols.min() <= 11 and cols.max() >= 88   # x 100..900 -> 10..90


def test_later_stroke_wins():
    a = Annotation((100, 100))
    a.add_stroke(_paint(50, 50, r=10))
    a.add_stroke(_paint(50, 50, r=4, mode="erase"))
    layer = a.stroke_layer((100, 100))
    assert layer[50, 50] == ERASED and layer[50, 58] == PAINTED
    a.add_stroke(_paint(50, 50, r=2))
    layer = a.stroke_layer((100, 100))
    assert layer[50, 50] == PAINTED and layer[50, 53] == ERASED and layer[50, 58] == PAINTED


def test_incremental_equals_rebuild_and_undo_rebuilds():
    rng = np.random.default_rng(0)
    a = Annotation((300, 500))
    sizes = [(300, 500), (123, 205)]
    strokes = []
    for i in range(12):
        pts = rng.uniform([0, 0], [500, 300], size=(int(rng.integers(1, 6)), 2))
        st = Stroke("paint" if i % 3 else "erase", float(rng.uniform(1, 25)), pts)
        strokes.append(st)
        a.add_stroke(st)
        for size in sizes:      # drawn incrementally into the cached layers, one stroke at a time
            a.stroke_layer(size)

    def rebuilt(n, size):
        b = Annotation((300, 500))
        for st in strokes[:n]:
            b.add_stroke(st)
        return b.stroke_layer(size)

    for size in sizes:
        inc = a.stroke_layer(size)
        np.testing.assert_array_equal(inc, rebuilt(12, size))
        assert np.count_nonzero(inc == PAINTED) and np.count_nonzero(inc == ERASED)
    for _ in range(4):
        a.undo()
    for size in sizes:
        np.testing.assert_array_equal(a.stroke_layer(size), rebuilt(8, size))
    a.redo()                    # redo appends again: incremental path
    for size in sizes:
        np.testing.assert_array_equal(a.stroke_layer(size), rebuilt(9, size))
    a.clear()
    assert not a.stroke_layer(sizes[0]).any()


def test_stroke_layer_is_read_only_cache():
    a = Annotation((20, 20))
    a.add_stroke(_paint(5, 5))
    layer = a.stroke_layer((20, 20))
    assert not layer.flags.writeable
    assert a.stroke_layer((20, 20)) is layer


# ---- compose ----------------------------------------------------------------------------------------------
def test_compose_semantics():
    a = Annotation((40, 80))
    model = np.zeros((20, 40), bool)
    model[:, :20] = True
    # no prompt yet: the model mask is ignored
    assert not a.compose(model).any()
    a.add_point(5, 5)
    np.testing.assert_array_equal(a.compose(model), model)
    a.add_stroke(_paint(60, 20, r=4))                 # paint outside the model mask (view x 30, y 10)
    a.add_stroke(_paint(10, 20, r=4, mode="erase"))   # erase inside it (view x 5, y 10)
    out = a.compose(model)
    assert out.shape == (20, 40) and out.dtype == bool
    assert out[10, 30] and not out[10, 5] and out[0, 0] and not out[0, 39]
    layer = a.stroke_layer((20, 40))
    np.testing.assert_array_equal(out, (model & (layer != ERASED)) | (layer == PAINTED))
    # Escape drops prompts: model ignored, strokes stay
    a.drop_prompts()
    out = a.compose(model)
    np.testing.assert_array_equal(out, layer == PAINTED)
    # clear: empty until the next prompt
    a.clear()
    assert not a.compose(model).any()
    a.add_point(5, 5)
    np.testing.assert_array_equal(a.compose(model), model)
    assert model[:, :20].all() and not model[:, 20:].any()   # input untouched


def test_compose_none_uses_view_size_or_given_size():
    a = Annotation((4000, 5000))
    a.add_stroke(_paint(2500, 2000, r=50))
    out = a.compose(None)
    assert out.shape == (1638, 2048) and out[819, 1024] and out.sum() > 0
    out = a.compose(None, size=(40, 50))
    assert out.shape == (40, 50) and out[20, 25]
    with pytest.raises(ValueError):
        a.compose(np.zeros(5, bool))


# ---- persistence ------------------------------------------------------------------------------------------
def test_round_trip_through_json():
    a = Annotation((300, 200))
    a.add_point(10.5, 20.25, True)
    a.add_point(30, 40, False)
    a.set_box((1, 2, 100, 150))
    a.choose_candidate(1)
    a.add_stroke(_line(5, 5, 50, 60, r=3.5))
    a.add_stroke(_paint(70, 80, r=2, mode="erase"))
    d = json.loads(json.dumps(a.to_dict()))
    b = Annotation.from_dict(d)
    assert b.original_size == (300, 200)
    assert b.prompt.to_dict() == a.prompt.to_dict()
    assert b.candidate == 1
    assert b.strokes == a.strokes
    assert b.click_count == 2
    assert not b.can_undo and not b.can_redo    # history is not saved
    np.testing.assert_array_equal(b.stroke_layer((150, 100)), a.stroke_layer((150, 100)))
    assert b.to_dict() == d
    assert Annotation.from_dict(json.loads(json.dumps(Annotation((5, 6)).to_dict()))).prompt.is_empty


def test_appending_a_stroke_draws_only_that_stroke(monkeypatch):
    from floodlabel.core.annotation import annotation as mod
    a = Annotation((4000, 5000))
    for i in range(5):
        a.add_stroke(_paint(100 * i, 100, r=10))
    a.stroke_layer((4000, 5000))
    calls = []
    real = mod._draw_stroke
    monkeypatch.setattr(mod, "_draw_stroke", lambda *args: (calls.append(args[1]), real(*args)))
    new = _line(10, 10, 40, 30, r=5)
    a.add_stroke(new)
    a.stroke_layer((4000, 5000))
    assert calls == [new]          # local draw onto the cached layer, no rebuild
    a.undo()
    a.stroke_layer((4000, 5000))
    assert len(calls) == 6         # undo rebuilds from the 5 remaining strokes
