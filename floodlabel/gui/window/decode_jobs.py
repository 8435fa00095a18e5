"""What the segmentation controller's decode worker runs: a prompt decoded at the view size, and the shown
candidate decoded again at the image's native size with the strokes applied and its metrics.

Frames: the view size is `view_size(original_size)` (long side <= 2048), the native size the original image's
(H, W). The jobs run off the UI thread and return a `Decoded`; what the UI thread makes of one is in
`mask_composition`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from floodlabel.core.annotation.annotation import apply_stroke_layer, view_size
from floodlabel.core.common import background_work
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.evaluation.metrics import MaskMetrics, mask_metrics
from floodlabel.core.segment.candidates import candidate_thumbnails
from floodlabel.core.tiles.view_frame import ViewFrameSession


@dataclass
class Decoded:
    """A decode result. kind: "prompt" (the annotation's prompt), "box" (a live box drag), "hover" (preview),
    "native" (the shown candidate again at the native size).

    prediction: at `size` (the view size); native_mask: the shown candidate (H, W) bool at the image's size, when
    known.
    """

    kind: str
    prompt_key: str
    prediction: Any
    candidate: int
    size: tuple[int, int]
    thumbs: list[np.ndarray] = field(default_factory=list)
    native_mask: np.ndarray | None = None
    # large images: the native mask with the strokes applied and its metrics, made in the worker for the
    # annotation at `version` (the UI thread does not compose and score 12 MP masks per click)
    composed: np.ndarray | None = None
    metrics: MaskMetrics | None = None
    version: int = -1
    new_prompt: bool = False  # a "native" result that completes a new prompt's decode (its score is reported)
    partial: bool = False  # a "prompt" result at the view size whose native part follows in the same request


@dataclass
class PressDecode:
    """The decode of the point that a mouse press would add, started before its click comes with the release
    (`SegmentationController.press`): request `request` for prompt key `key`; `results`: its parts that came in
    before the click."""

    key: str
    request: int
    results: list[Decoded] = field(default_factory=list)


class PressAhead:
    """The press whose click has not come yet, if any (`PressDecode`)."""

    def __init__(self) -> None:
        self.press: PressDecode | None = None

    def start(self, key: str, request: int) -> None:
        self.press = PressDecode(key, request)

    def hold(self, request: int, result: Decoded) -> bool:
        """Keep `result` of `request` if it is the press's (its click has not come): True when kept."""
        if self.press is None or self.press.request != request:
            return False
        self.press.results.append(result)
        return True

    def take(self, key: str, request: int) -> list[Decoded] | None:
        """The click of prompt `key` came, `request` the latest: the press's parts that are in when the press's
        decode is that prompt's and still the latest request (the rest come as results of `request`), else None."""
        press, self.press = self.press, None
        return press.results if press is not None and press.key == key and press.request == request else None

    def drop(self, request: int) -> bool:
        """The press did not become its point: whether its decode was the latest request (`request`)."""
        press, self.press = self.press, None
        return press is not None and press.request == request


def decode_view(session, embedding, kind: str, key: str, prompt: Prompt, candidate: int | None,
                size: tuple[int, int]) -> Decoded:
    """Decode `prompt` at `size` (h, w); the shown candidate (`candidate`, else the best) is upscaled here."""
    pred = session.predict(embedding, prompt, multimask=True, output_size=size)
    chosen = candidate if candidate is not None and candidate < len(pred) else pred.best
    pred.mask(chosen)  # upscale the shown candidate here, not on the UI thread
    return Decoded(kind, key, pred, chosen, size, candidate_thumbnails(pred, embedding.input_size))


WARM_AFTER_S = 0.15
"""With a prompt on screen, a pointer moving over the image runs a decode that nobody sees when the decoder has been
idle this long (`warm_job`)."""


def warm_job(session, embedding, prompt: Prompt, item) -> Callable[[], None]:
    """A decode of `prompt` (the prompt with the point under the pointer) whose result is thrown away, so that the
    next click's decode finds the decoder's weights and image state in the CPU's caches. On the 2-core VM, a decode
    after the decoder sat idle 0.5-1 s took 67-73 ms against 25-28 ms 30 ms after another decode."""
    size = view_size(item.original_size)

    def job() -> None:
        pred = session.predict(embedding, prompt, multimask=True, output_size=size)
        pred.mask(pred.best)

    return job


def decode_native(session, embedding, shown: Decoded, prompt: Prompt, candidate: int, layer: np.ndarray | None,
                  gt: np.ndarray | None, version: int) -> Decoded:
    """`shown`'s candidate decoded at the native size (H, W), `layer` (a stroke-layer snapshot at (H, W), or None)
    applied, scored against `gt` (H, W) bool when there is one; a "native" Decoded for annotation `version`."""
    native = session.predict(embedding, prompt, multimask=True).mask(candidate)
    composed = apply_stroke_layer(native.copy(), layer) if layer is not None else native
    metrics = mask_metrics(composed, gt) if gt is not None else None
    return Decoded("native", shown.prompt_key, shown.prediction, candidate, shown.size, shown.thumbs,
                   native, composed, metrics, version)


def decode_prompt(session, embedding, key: str, prompt: Prompt, candidate: int | None, size: tuple[int, int],
                  layer: np.ndarray | None, gt: np.ndarray | None, version: int) -> Iterator[Decoded]:
    """A new prompt on an image larger than the view, in two parts of one request: `decode_view` at `size` (h, w),
    yielded at once with `partial` set (the overlay is painted from it), then its shown candidate at the native size
    (`decode_native`: strokes, metrics), a "native" Decoded with `new_prompt` set. The click waited for both
    before (4000x3000: 105 ms to the overlay against 40 ms for the decode alone)."""
    shown = decode_view(session, embedding, "prompt", key, prompt, candidate, size)
    shown.partial = True
    yield shown
    result = decode_native(session, embedding, shown, prompt, shown.candidate, layer, gt, version)
    result.new_prompt = True
    yield result


def prompt_key(prompt: Prompt) -> str:
    """The key a decoded prediction carries (`Decoded.prompt_key`) for the prompt it was made for: its points and
    box (the text part is not decoded: a threshold change keeps the decode)."""
    return repr(prompt.with_text(None).to_dict())


def decode_session(session, item):
    """The session prompts decode through: a large map's image is its view (`core.tiles.map_item.MapItem`), so its
    prompts (full frame) go through `ViewFrameSession`."""
    if item is not None and tuple(item.image.shape[:2]) != tuple(item.original_size):
        return ViewFrameSession(session, item.original_size)
    return session


def beside_children(fn: Callable[[], Any], encoder) -> Callable[[], Any]:
    """`fn` as the decoder's job beside the background children: a pre-encoding (`encoder`, the window's
    `EncoderJobs`) or fine-tuning child that holds a core is stopped while it runs, with the process's torch threads
    (`core.common.background_work`); where a child cannot be stopped, it runs with 1 torch thread beside it
    (`compute_config.threads_here`)."""
    children = background_work.pids()
    if encoder.background_busy and encoder.background_pid is not None:
        children.append(encoder.background_pid)
    stop = children if background_work.CAN_STOP else []
    busy = encoder.background_busy or background_work.busy()
    return with_threads(fn, 1 if busy and not stop else None, stop)


def with_threads(fn: Callable[[], Any], threads: int | None, stop: Sequence[int] = ()) -> Callable[[], Any]:
    """`fn` as a worker job that first sets its thread's torch threads (`compute_config.threads_here`; None: the
    process's count). `stop`: child processes (pre-encoding, fine-tuning) kept stopped while it runs
    (`core.common.background_work.stopped`: the click has the cores); a result in parts keeps them stopped until
    its last part, or until the worker ends it early."""
    def job() -> Any:
        from floodlabel.core.segment.compute_config import threads_here  # torch: never imported on the UI thread

        threads_here(threads)
        return _stopping(fn, stop) if stop else fn()

    return job


def _stopping(fn: Callable[[], Any], stop: Sequence[int]) -> Iterator[Any]:
    with background_work.stopped(stop):
        result = fn()
        if inspect.isgenerator(result):
            yield from result
        else:
            yield result
