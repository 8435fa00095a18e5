"""One image's annotation, Qt-free: prompts, the chosen candidate, brush strokes, and undo/redo of those steps.

Frames: every point, box and stroke stored here is in the *original* frame: the image as read, (H, W) pixels,
x to the right and y down. The mask is composed at any size (h, w), normally the *view* size
`view_size(original_size)` (long side at most 2048 px, never upscaled); strokes are scaled to it.

Steps (each one undoable): add_point, set_box, choose_candidate, add_stroke, run_text, set_text_threshold,
toggle_instance, drop_prompts, clear. A new step
after an undo discards the redo branch. `version` grows by one on every change, undo and redo included, and
listeners are called after every change.

Stroke rule: strokes are overrides. Painted pixels stay water and erased pixels stay not-water whatever prompts
or candidates come later; a later stroke wins where strokes overlap. Undo or Clear removes them. Clear also means
the model mask is not shown until the next prompt (`has_model_mask` is False while the prompt is empty, and
`compose` then ignores any model mask it is given).

Saved-mask rule: an image reopened with its accepted mask starts in a state marked `uses_saved_mask`
(`mark_saved_mask`): that mask is the state's model mask even when the prompt is empty (a recovered mask, a
brush-only accept). Strokes keep the mark; a new point, box, candidate, Escape or Clear drops it; undo brings it back.

Text rule: the text step (phrase, threshold, dropped instances) is part of the state; how its instances, a point/box
decode and the strokes make the mask is in `text_step` (base = kept instances, a decode adds, negatives and the
eraser remove). Threshold and toggles are steps of their own, so undo walks back through them; none runs the model.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable

import cv2
import numpy as np

from floodlabel.core.annotation.prompts import Prompt, TextPrompt

MAX_VIEW_SIDE = 2048
HISTORY_LIMIT = 500  # undoable steps kept; the oldest are forgotten first
STROKE_MODES = ("paint", "erase")
UNTOUCHED, PAINTED, ERASED = 0, 1, 2  # stroke_layer values


def apply_stroke_layer(mask: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """In place: erased pixels of `layer` ((h, w) uint8 from `Annotation.stroke_layer`) become False in `mask`
    ((h, w) bool), painted ones True. Returns `mask`. (A worker thread can apply a copied layer with this.)"""
    mask &= layer != ERASED
    mask |= layer == PAINTED
    return mask


def view_size(original_size: tuple[int, int], max_side: int = MAX_VIEW_SIDE) -> tuple[int, int]:
    """(h, w) of the view: original (H, W) scaled so the long side is at most max_side (never upscaled).

    Both sides are rounded to the nearest pixel and are at least 1.
    """
    H, W = int(original_size[0]), int(original_size[1])
    if H < 1 or W < 1:
        raise ValueError(f"original size must be positive, got {original_size}")
    long_side = max(H, W)
    if long_side <= max_side:
        return H, W
    s = max_side / long_side
    return max(1, round(H * s)), max(1, round(W * s))


@dataclass(frozen=True, eq=False)
class Stroke:
    """One brush or eraser drag, in the original frame.

    mode:   "paint" (water) or "erase" (not water).
    radius: brush radius in original-frame pixels (> 0).
    points: (N, 2) float32 (x, y), N >= 1, read-only; one point is a dot, more are a polyline with round caps.
    """

    mode: str
    radius: float
    points: np.ndarray

    def __post_init__(self) -> None:
        if self.mode not in STROKE_MODES:
            raise ValueError(f"stroke mode must be one of {STROKE_MODES}, got {self.mode!r}")
        radius = float(self.radius)
        if not radius > 0:
            raise ValueError(f"stroke radius must be > 0, got {self.radius}")
        pts = np.array(self.points, dtype=np.float32).reshape(-1, 2)
        if len(pts) == 0:
            raise ValueError("a stroke needs at least one point")
        pts.setflags(write=False)
        object.__setattr__(self, "radius", radius)
        object.__setattr__(self, "points", pts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stroke):
            return NotImplemented
        return (self.mode == other.mode and self.radius == other.radius
                and np.array_equal(self.points, other.points))

    __hash__ = object.__hash__

    def to_dict(self) -> dict:
        return {"mode": self.mode, "radius": self.radius, "points": self.points.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Stroke":
        return cls(d["mode"], d["radius"], np.asarray(d["points"], np.float32))


@dataclass(frozen=True)
class _State:
    """One immutable snapshot on the undo stack."""

    prompt: Prompt = field(default_factory=Prompt)
    candidate: int | None = None
    strokes: tuple[Stroke, ...] = ()
    saved_mask: bool = False  # the accepted mask restored from the store is this state's model mask
    dropped: frozenset[int] = frozenset()  # text instances the user dropped (indices into the unfiltered list)


class Annotation:
    """The annotation of one image: what the mask is now, and how it got there (undo/redo).

    original_size: (H, W) of the image as read. All coordinates passed in are in that frame.
    """

    def __init__(self, original_size: tuple[int, int]) -> None:
        H, W = int(original_size[0]), int(original_size[1])
        if H < 1 or W < 1:
            raise ValueError(f"original size must be positive, got {original_size}")
        self.original_size: tuple[int, int] = (H, W)
        self.version: int = 0
        self.click_count: int = 0
        self._history: list[_State] = [_State()]
        self._index = 0
        self._listeners: list[Callable[[Annotation], None]] = []
        # size (h, w) -> (strokes drawn into it, (h, w) uint8 layer); least recently used first
        self._layers: OrderedDict[tuple[int, int], tuple[tuple[Stroke, ...], np.ndarray]] = OrderedDict()

    # ---- state -------------------------------------------------------------------------------------------
    @property
    def prompt(self) -> Prompt:
        """Current points and box, original frame."""
        return self._state.prompt

    @property
    def candidate(self) -> int | None:
        """Chosen candidate index, or None for the model's best."""
        return self._state.candidate

    @property
    def strokes(self) -> tuple[Stroke, ...]:
        """Brush/eraser strokes in the order drawn (later wins)."""
        return self._state.strokes

    @property
    def text(self) -> TextPrompt | None:
        """The concept prompt (phrase, threshold) of the current state, or None."""
        return self._state.prompt.text

    @property
    def dropped(self) -> frozenset[int]:
        """Indices of the text instances dropped by a click (into the model's unfiltered instance list)."""
        return self._state.dropped

    @property
    def has_model_mask(self) -> bool:
        """Whether the model's mask takes part: False while the prompt is empty (new image, after clear or
        drop_prompts) unless the state uses the saved mask; `compose` ignores a model mask then."""
        return not self._state.prompt.is_empty or self._state.saved_mask

    @property
    def uses_saved_mask(self) -> bool:
        """Whether the accepted mask restored from the store is the model mask now (see `mark_saved_mask`)."""
        return self._state.saved_mask

    def mark_saved_mask(self) -> None:
        """The accepted mask restored with this annotation is the current state's model mask. Not a step: no undo
        entry, `version` and listeners unchanged (it describes how the image was reopened)."""
        self._history[self._index] = replace(self._state, saved_mask=True)

    @property
    def prompt_points_count(self) -> int:
        """Points in the current prompt (undo reduces it, unlike click_count)."""
        return len(self._state.prompt.points)

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._history) - 1

    # ---- steps (each undoable) ---------------------------------------------------------------------------
    def add_point(self, x: float, y: float, positive: bool = True) -> None:
        """Append a prompt point (original frame); counts as a click. Resets the candidate to the model's best
        (candidate indices belong to the previous prompt's output)."""
        self.click_count += 1
        s = self._state
        self._push(replace(s, prompt=s.prompt.with_point(float(x), float(y), bool(positive)), candidate=None,
                           saved_mask=False))

    def set_box(self, box: np.ndarray | tuple[float, float, float, float] | None) -> None:
        """Set or remove the box (x0, y0, x1, y1), original frame; resets the candidate. No-op if unchanged."""
        s = self._state
        prompt = s.prompt.with_box(box)
        if _same_box(prompt.box, s.prompt.box):
            return
        self._push(replace(s, prompt=prompt, candidate=None, saved_mask=False))

    def choose_candidate(self, i: int | None) -> None:
        """Pick candidate i of the model's output (None = the model's best). No-op if unchanged."""
        i = None if i is None else int(i)
        if i is not None and i < 0:
            raise ValueError(f"candidate index must be >= 0, got {i}")
        if i == self._state.candidate:
            return
        self._push(replace(self._state, candidate=i, saved_mask=False))

    def add_stroke(self, stroke: Stroke) -> None:
        """Append a finished brush/eraser stroke (original frame)."""
        if not isinstance(stroke, Stroke):
            raise TypeError(f"expected a Stroke, got {type(stroke).__name__}")
        s = self._state
        self._push(replace(s, strokes=s.strokes + (stroke,)))

    def run_text(self, phrase: str, threshold: float) -> None:
        """The text step: ask for every instance of `phrase`, keeping those with score >= threshold. Points, box and
        strokes stay (they refine the new base); dropped instances are forgotten (they belonged to the previous
        run). ValueError for an empty phrase or a threshold outside [0, 1]. No-op if phrase and threshold are the
        current ones and nothing is dropped."""
        text = TextPrompt(phrase, threshold)
        s = self._state
        if s.prompt.text == text and not s.dropped:
            return
        self._push(replace(s, prompt=s.prompt.with_text(text), dropped=frozenset(), saved_mask=False))

    def set_text_threshold(self, threshold: float) -> None:
        """Re-filter the text instances at `threshold` (no model run). No-op without a text step or if unchanged."""
        s = self._state
        if s.prompt.text is None or float(threshold) == s.prompt.text.threshold:
            return
        text = TextPrompt(s.prompt.text.phrase, threshold)
        self._push(replace(s, prompt=s.prompt.with_text(text), saved_mask=False))

    def toggle_instance(self, i: int) -> None:
        """Drop text instance i (an index into the unfiltered instances), or keep it again if it was dropped."""
        s = self._state
        if s.prompt.text is None:
            raise ValueError("no text prompt: run one before toggling its instances")
        i = int(i)
        if i < 0:
            raise ValueError(f"instance index must be >= 0, got {i}")
        self._push(replace(s, dropped=s.dropped ^ {i}, saved_mask=False))

    def drop_prompts(self) -> None:
        """Escape: remove points, box and candidate choice; strokes stay. No-op if there is nothing to drop."""
        s = self._state
        if s.prompt.is_empty and s.candidate is None and not s.saved_mask:
            return
        self._push(replace(s, prompt=Prompt(), candidate=None, saved_mask=False, dropped=frozenset()))

    def clear(self) -> None:
        """Remove everything (prompts, candidate, strokes): the mask becomes empty. No-op if already empty."""
        s = self._state
        if s.prompt.is_empty and s.candidate is None and not s.strokes and not s.saved_mask:
            return
        self._push(_State())

    def undo(self) -> bool:
        """Step back; False (and no change) if there is nothing to undo."""
        if not self.can_undo:
            return False
        self._index -= 1
        self._changed()
        return True

    def redo(self) -> bool:
        """Step forward again; False (and no change) if there is nothing to redo."""
        if not self.can_redo:
            return False
        self._index += 1
        self._changed()
        return True

    # ---- queries -----------------------------------------------------------------------------------------
    def prompt_with_box(self, box: np.ndarray | tuple[float, float, float, float] | None) -> Prompt:
        """The current points with a tentative box (live box drag); not a step, nothing changes."""
        return self._state.prompt.with_box(box)

    def stroke_layer(self, size: tuple[int, int]) -> np.ndarray:
        """(h, w) uint8 at size (h, w): 0 untouched, 1 painted, 2 erased; later strokes overwrite earlier ones.

        Strokes are scaled from the original frame: x by w/W, y by h/H, radius by the mean of the two (at
        least 1 px). Cached for the last few sizes; strokes appended since the last call are drawn onto the
        cached layer (local work), anything else (undo, clear) rebuilds it. The returned array is the cache
        itself, read-only, and may be updated in place by later calls: copy it to keep a snapshot.
        """
        size = (int(size[0]), int(size[1]))
        strokes = self._state.strokes
        entry = self._layers.pop(size, None)
        if entry is not None and _is_prefix(entry[0], strokes):
            drawn, layer = entry
            if len(drawn) < len(strokes):
                layer.setflags(write=True)
                for st in strokes[len(drawn):]:
                    _draw_stroke(layer, st, self.original_size)
        else:
            layer = np.zeros(size, np.uint8)
            for st in strokes:
                _draw_stroke(layer, st, self.original_size)
        layer.setflags(write=False)
        self._layers[size] = (strokes, layer)
        while len(self._layers) > 3:
            self._layers.popitem(last=False)
        return layer

    def compose(self, model_mask: np.ndarray | None, size: tuple[int, int] | None = None) -> np.ndarray:
        """The mask now: (h, w) bool = (model & ~erased) | painted, at the model mask's size.

        model_mask: (h, w) bool (nonzero = water), any size, or None for no model mask. It is ignored while
            `has_model_mask` is False (empty prompt: new image, after clear or drop_prompts, unless the state uses
            the saved mask).
        size: (h, w) to use when model_mask is None; default view_size(original_size).
        """
        if model_mask is not None:
            model_mask = np.asarray(model_mask)
            if model_mask.ndim != 2:
                raise ValueError(f"model mask must be 2-D, got shape {model_mask.shape}")
            size = (int(model_mask.shape[0]), int(model_mask.shape[1]))
        elif size is None:
            size = view_size(self.original_size)
        if model_mask is not None and self.has_model_mask:
            out = model_mask.astype(bool, copy=True)
        else:
            out = np.zeros(size, bool)
        if self._state.strokes:
            apply_stroke_layer(out, self.stroke_layer(size))
        return out

    # ---- persistence and events ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-friendly state (no undo history): original_size, prompt (with its "text" when there is one),
        candidate, strokes, click_count, and "dropped" (sorted instance indices) when the prompt has a text part.
        Text instances are not saved (see `text_step`)."""
        s = self._state
        d = {
            "original_size": list(self.original_size),
            "prompt": s.prompt.to_dict(),
            "candidate": s.candidate,
            "strokes": [st.to_dict() for st in s.strokes],
            "click_count": self.click_count,
        }
        if s.prompt.text is not None:
            d["dropped"] = sorted(s.dropped)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Annotation":
        """Rebuild from `to_dict` output; the result has no undo history and version 0."""
        a = cls(tuple(d["original_size"]))
        cand = d.get("candidate")
        prompt = Prompt.from_dict(d.get("prompt", {}))
        dropped = frozenset(int(i) for i in d.get("dropped", ())) if prompt.text is not None else frozenset()
        a._history = [_State(prompt, None if cand is None else int(cand),
                             tuple(Stroke.from_dict(x) for x in d.get("strokes", [])), dropped=dropped)]
        a.click_count = int(d.get("click_count", 0))
        return a

    def add_listener(self, fn: Callable[["Annotation"], None]) -> None:
        """Call fn(self) after every change (steps, undo, redo)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[["Annotation"], None]) -> None:
        self._listeners.remove(fn)

    # ---- internals --------------------------------------------------------------------------------------
    @property
    def _state(self) -> _State:
        return self._history[self._index]

    def _push(self, state: _State) -> None:
        del self._history[self._index + 1:]
        self._history.append(state)
        if len(self._history) > HISTORY_LIMIT + 1:
            del self._history[0]
        self._index = len(self._history) - 1
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        for fn in list(self._listeners):
            fn(self)


_SHIFT = 4  # cv2 fractional bits for sub-pixel stroke coordinates


def draw_stroke_segment(layer: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: float,
                        original_size: tuple[int, int], value: int) -> None:
    """Draw one brush segment p0 -> p1 into layer (h, w) uint8 in place: the one stroke rasteriser.

    p0, p1: (x, y) in the original frame (H, W) = original_size; radius in original pixels. Scaled to the
    layer's frame: a point x maps to (x + 0.5) * w / W - 0.5 in layer pixel indices (pixel centres line up),
    the radius by the mean of the two scales (at least 1 px). Equal endpoints (after 1/16 px rounding) draw a
    filled dot; otherwise a line of width 2r with round caps. `value` is written into the drawn pixels.
    A stroke of points q0..qn is the dot (q0, q0) followed by the segments (q[i-1], q[i]): the live brush
    (canvas) and the saved stroke (`Annotation.stroke_layer`) draw exactly that, so their pixels agree.
    """
    h, w = layer.shape
    H, W = original_size
    sx, sy = w / W, h / H
    r = max(1.0, float(radius) * (sx + sy) / 2)
    one = 1 << _SHIFT
    a = (int(round(((p0[0] + 0.5) * sx - 0.5) * one)), int(round(((p0[1] + 0.5) * sy - 0.5) * one)))
    b = (int(round(((p1[0] + 0.5) * sx - 0.5) * one)), int(round(((p1[1] + 0.5) * sy - 0.5) * one)))
    if a == b:
        cv2.circle(layer, a, int(round(r * one)), int(value), -1, cv2.LINE_8, _SHIFT)
    else:
        cv2.line(layer, a, b, int(value), max(1, int(round(2 * r))), cv2.LINE_8, _SHIFT)


def _draw_stroke(layer: np.ndarray, stroke: Stroke, original_size: tuple[int, int]) -> None:
    """Draw stroke (original frame) into layer (h, w) uint8 in place, scaled from original_size (H, W)."""
    value = PAINTED if stroke.mode == "paint" else ERASED
    pts = stroke.points.tolist()
    draw_stroke_segment(layer, pts[0], pts[0], stroke.radius, original_size, value)
    for p0, p1 in zip(pts, pts[1:]):
        draw_stroke_segment(layer, p0, p1, stroke.radius, original_size, value)


def _is_prefix(drawn: tuple[Stroke, ...], strokes: tuple[Stroke, ...]) -> bool:
    return len(drawn) <= len(strokes) and all(a is b for a, b in zip(drawn, strokes))


def _same_box(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))
