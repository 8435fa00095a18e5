"""Prompts: positive/negative points, an optional box and an optional text (concept) part, in original-image pixels.

Frames: every coordinate here is in the *original image* frame, x to the right and y down, in pixels
(x in [0, W), y in [0, H)). Backends map them to their own frames (SAM's 1024 input) themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

POSITIVE = 1
NEGATIVE = 0


DEFAULT_PHRASE = "water"
DEFAULT_TEXT_THRESHOLD = 0.5
MIN_TEXT_THRESHOLD = 0.05
"""A text segmenter returns no instance scoring under this: a lower threshold counts what this one does."""


@dataclass(frozen=True)
class TextPrompt:
    """A concept prompt (SAM 3's promptable concept segmentation): a short noun phrase, and the confidence in
    [0, 1] an instance needs to count as part of the mask. The threshold filters instances the model already
    returned; changing it never runs the model again."""

    phrase: str = DEFAULT_PHRASE
    threshold: float = DEFAULT_TEXT_THRESHOLD

    def __post_init__(self) -> None:
        phrase = " ".join(str(self.phrase).split())
        if not phrase:
            raise ValueError("a text prompt needs a phrase, e.g. 'water'")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"a text prompt's threshold must be in [0, 1], not {self.threshold}")
        object.__setattr__(self, "phrase", phrase)
        object.__setattr__(self, "threshold", float(self.threshold))

    def to_dict(self) -> dict:
        return {"phrase": self.phrase, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> "TextPrompt":
        return cls(d.get("phrase", DEFAULT_PHRASE), d.get("threshold", DEFAULT_TEXT_THRESHOLD))


@dataclass(frozen=True)
class Prompt:
    """Points with labels and/or one box, and optionally a text part, in original-image pixels.

    points: (N, 2) float32, columns (x, y).
    labels: (N,) int32, 1 = positive (water), 0 = negative (not water).
    box:    (4,) float32 (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1, or None.
    text:   the concept prompt that produced (or seeded) the mask, or None. Only a backend whose capabilities
            say `text_prompt` reads it (through `TextSegmenter.segment_text`); the others ignore it.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    box: np.ndarray | None = None
    text: TextPrompt | None = None

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
        lab = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if len(pts) != len(lab):
            raise ValueError(f"{len(pts)} points but {len(lab)} labels")
        if np.any((lab != POSITIVE) & (lab != NEGATIVE)):
            raise ValueError("labels must be 1 (positive) or 0 (negative)")
        box = None
        if self.box is not None:
            b = np.asarray(self.box, dtype=np.float32).reshape(4)
            box = np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])], np.float32)
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "labels", lab)
        object.__setattr__(self, "box", box)

    @property
    def is_empty(self) -> bool:
        """No point, no box and no text."""
        return len(self.points) == 0 and self.box is None and self.text is None

    @property
    def has_geometry(self) -> bool:
        """At least one point or a box (what `Segmenter.predict` decodes)."""
        return len(self.points) > 0 or self.box is not None

    def with_point(self, x: float, y: float, positive: bool = True) -> "Prompt":
        """A new prompt with one more point appended."""
        return Prompt(
            np.vstack([self.points, [[x, y]]]),
            np.append(self.labels, POSITIVE if positive else NEGATIVE),
            self.box,
            self.text,
        )

    def with_box(self, box: np.ndarray | tuple[float, float, float, float] | None) -> "Prompt":
        return Prompt(self.points, self.labels, None if box is None else np.asarray(box, np.float32), self.text)

    def with_text(self, text: TextPrompt | None) -> "Prompt":
        return Prompt(self.points, self.labels, self.box, text)

    def to_dict(self) -> dict:
        """JSON-friendly form (saved beside accepted masks). "text" is present only when the prompt has one."""
        d = {
            "points": self.points.tolist(),
            "labels": self.labels.tolist(),
            "box": None if self.box is None else self.box.tolist(),
        }
        if self.text is not None:
            d["text"] = self.text.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Prompt":
        text = d.get("text")
        return cls(np.asarray(d.get("points", []), np.float32).reshape(-1, 2),
                   np.asarray(d.get("labels", []), np.int32), d.get("box"),
                   None if not text else TextPrompt.from_dict(text))

    @classmethod
    def from_text(cls, phrase: str = DEFAULT_PHRASE, threshold: float = DEFAULT_TEXT_THRESHOLD) -> "Prompt":
        return cls(text=TextPrompt(phrase, threshold))

    @classmethod
    def point(cls, x: float, y: float, positive: bool = True) -> "Prompt":
        return cls(np.array([[x, y]], np.float32), np.array([POSITIVE if positive else NEGATIVE], np.int32))

    @classmethod
    def from_box(cls, box: tuple[float, float, float, float] | np.ndarray) -> "Prompt":
        return cls(box=np.asarray(box, np.float32))
