"""The masks the segmentation controller composes from a `Decoded` (or a fixed mask): the one the canvas shows at the
view size and the one that would be saved at the native size, with its metrics (on the UI thread for an image no
larger than the view, else in a worker: `native.native_compose`).

Frames: the view size is `view_size(original_size)` (long side <= 2048), the native size the original image's
(H, W). A fixed mask (Auto's, or the accepted mask restored from the project store) is at the native size and wins
over the decoder's; the annotation's strokes are applied last (`Annotation.compose`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from floodlabel.core.annotation.annotation import Annotation
from floodlabel.core.evaluation.metrics import MaskMetrics, mask_metrics
from floodlabel.gui.window.decode_jobs import Decoded


def view_model_mask(fixed: np.ndarray | None, shown: Decoded | None, chosen: int,
                    view: tuple[int, int]) -> np.ndarray | None:
    """The model's mask at the view size, strokes not applied: the fixed mask resized, else `shown`'s candidate
    `chosen`, else None."""
    if fixed is not None:
        return resize_mask(fixed, view)
    if shown is not None:
        return shown.prediction.mask(chosen)
    return None


def with_strokes(annotation: Annotation, model_mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """`model_mask` (or an empty one of `size`) with the annotation's strokes applied; None when there is neither a
    model mask nor a stroke."""
    if model_mask is None and not annotation.strokes:
        return None
    return annotation.compose(model_mask if model_mask is not None else np.zeros(size, bool))


def saved_mask(annotation: Annotation, gt: np.ndarray | None, native_size: tuple[int, int], fixed: np.ndarray | None,
               shown: Decoded | None, model_native: np.ndarray | None) -> tuple[np.ndarray | None, MaskMetrics | None]:
    """(the mask that would be saved, its metrics against `gt` or None): the worker's when it made them for this
    version of the annotation, else composed and scored here (`model_native` from `native_model_mask`)."""
    if (fixed is None and shown is not None and shown.kind == "native" and shown.version == annotation.version
            and shown.composed is not None):
        return shown.composed, shown.metrics  # made in the worker
    mask = with_strokes(annotation, model_native, native_size)
    return mask, (mask_metrics(mask, gt) if gt is not None and mask is not None else None)


def native_model_mask(fixed: np.ndarray | None, shown: Decoded | None, chosen: int, model_view: np.ndarray | None,
                      native_size: tuple[int, int]) -> tuple[bool, np.ndarray | None]:
    """The model's mask at the native size (H, W), strokes not applied: (True, mask or None when there is none), or
    (False, None) while it has to come from the decode worker.

    fixed: Auto's or the restored (H, W) mask, which wins; shown: the decode on screen, `chosen` its shown candidate;
    model_view: the model mask at the view size (it is the native one when the image is no larger than the view).
    """
    if fixed is not None:
        return True, fixed
    if shown is None:
        return True, None
    if model_view is not None and model_view.shape == native_size:
        return True, model_view
    if shown.kind == "native" and shown.candidate == chosen:
        return True, shown.native_mask
    return False, None


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool `mask` at `size` (h, w), nearest neighbour (e.g. a native-size fixed mask at the view size)."""
    import cv2

    if mask.shape == tuple(size):
        return mask
    contiguous = mask.dtype == np.bool_ and mask.flags.c_contiguous
    pixels = mask.view(np.uint8) if contiguous else (mask != 0).view(np.uint8)
    return cv2.resize(pixels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST).view(bool)  # no full-size copy


def stroke_snapshot(annotation: Annotation, native_size: tuple[int, int]) -> np.ndarray | None:
    """The strokes' layer at the native size (H, W) for a worker (an array of its own), None without strokes.

    Drawn afresh on a copy of the annotation: the strokes touch a few of the layer's pages, where copying the
    annotation's cached layer wrote all of them (400 MB for a 20,000^2 map: 0.1 s on the UI thread)."""
    return deferred_stroke_layer(annotation, native_size)()


def deferred_stroke_layer(annotation: Annotation, native_size: tuple[int, int]) -> Callable[[], np.ndarray | None]:
    """`stroke_snapshot` drawn when called (in a worker: the strokes of this version are copied now)."""
    if not annotation.strokes:
        return lambda: None
    state = annotation.to_dict()
    return lambda: Annotation.from_dict(state).stroke_layer(native_size)
