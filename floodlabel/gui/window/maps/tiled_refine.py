"""The full-resolution refine of a large map's mask (issue 17): after a prompt is decoded on the map's view, the
tiled decode (`core.tiles.tiled.TiledDecoder`: 1024 px tiles with a 128 px halo, read from the file at full
resolution) runs in a background thread and its stitched mask replaces the view-level one while the prompt holds.

How the two levels meet: the view-level decode (one embedding of the whole view, upscaled) is shown at once; the
refine's mask comes back with the key it was started for, (row, prompt key), and the controller shows it as the
model mask (`fixed_mask.FixedMask`'s rule: a fixed mask shown until the prompt changes; strokes stay on
top). The refined mask replaces the view-level one inside the cores of the tiles the refine decoded
(`TiledResult.owned`); outside them the view-level mask is kept (water not reached from the prompt's tiles). A new
prompt, another image or closing cancels the running refine (between tiles); one TiledDecoder per image and model
keeps the tile embeddings (LRU, plus the session's cache).

Order and prefetch: `visible` (the canvas's range, set by `map_detail.MapDetail`) puts the tiles in view first in
a refine; `prefetch(session, item)` encodes the tiles in and around the view (`TiledDecoder.prefetch_order`) in a
background job with 1 torch thread, one tile at a time under the decoder lock, so a click's refine finds them
cached. A refine (or another view) cancels the prefetch between tiles; a refine waits at most for the tile being
encoded.

Accept before the refine came in (`RefinedAccepts`): the accept is written at once with the view-level mask (a kill
loses nothing), the refine it needs is *kept* (`TiledRefiner.keep`: another image, prompt or folder no longer cancels
it, or it is started when it had not started yet; a kept refine is named by its map's key too, `(item.key, (row,
prompt key))`, so a row of another folder never takes it), and when it ends the full-resolution mask (refined
inside the decoded cores, the view-level mask elsewhere, the strokes of the accept on top, scored against the GT)
is composed in a worker and accepted again over the first one, with the same state. An accept or an edit of that image meanwhile
drops the second write (the newer work wins); a failed refine leaves the view-level accept and says so. Each
waiting accept belongs to the project it was made in (`owner`: the StoreLink whose `accept` saves it), so it is
saved there even after another folder opened; that project closes only after it (`ProjectActions`, bounded).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.annotation.annotation import apply_stroke_layer
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.evaluation.metrics import mask_metrics
from floodlabel.core.tiles.map_item import MapItem
from floodlabel.core.tiles.tiled import MAX_TILES, TiledDecoder, map_reader
from floodlabel.gui.workers.background import BackgroundCall, BackgroundJob


class TiledRefiner(QObject):
    """One refine at a time, plus the refines accepts wait for (`keep`). Signals: done(key, mask (H, W) bool, owned
    (H, W) bool: where `mask` is the tiled decode's), progress(one status line), kept_done(key, mask, owned) and
    kept_failed(key, message) for the refines `keep` holds."""

    done = Signal(object, object, object)
    progress = Signal(str)
    kept_done = Signal(object, object, object)
    kept_failed = Signal(object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._job: BackgroundJob | None = None
        self._job_key: tuple | None = None  # (row, prompt key) of the running refine
        self._job_item: str | None = None  # its map's key
        self._kept: dict[tuple, BackgroundJob] = {}  # (item.key, key) -> a refine an accept waits for (`keep`)
        self._decoder: TiledDecoder | None = None
        self._decoder_key: tuple | None = None
        self._lock = threading.Lock()  # one thread in a TiledDecoder at a time (a cancelled one finishes a tile)
        self._started = 0.0
        self._prefetch: BackgroundJob | None = None
        self.last_key: tuple | None = None  # (row, prompt key) of the latest `start`
        self.last_item: str | None = None  # and its map's key
        self.visible: tuple[float, float, float, float] | None = None  # the view's range (full frame), or None
        self.prefetched = 0  # tiles encoded by prefetches (tests, status)

    @staticmethod
    def wanted(item) -> bool:
        """Whether an image is refined tile by tile: a MapItem (a GeoTIFF opened through its view)."""
        return isinstance(item, MapItem)

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.is_running()

    @property
    def kept(self) -> int:
        """Kept refines (an accept waits for each) still running."""
        return sum(1 for job in self._kept.values() if job.is_running())

    def start(self, session, item: MapItem, prompt: Prompt, key: tuple) -> None:
        """Refine `prompt` (full-frame) on `item`; `done(key, mask, owned)` when finished. Cancels the previous
        refine (not a kept one); a kept refine of the same key is not started twice."""
        self.cancel()
        self.last_key, self.last_item, self._started = key, item.key, time.perf_counter()
        if (item.key, key) in self._kept:
            return
        self._job, self._job_key, self._job_item = self._launch(session, item, prompt, key), key, item.key

    def keep(self, session, item: MapItem, prompt: Prompt, key: tuple) -> None:
        """An accept waits for the refine of `key` on `item`: the running one is kept (no longer cancelled), else
        one is started; `kept_done((item.key, key), mask, owned)` or `kept_failed((item.key, key), message)`
        follows."""
        kept = (item.key, key)
        if kept in self._kept:
            return
        if self._job is not None and self._job_key == key and self._job_item == item.key \
                and self._job.is_running() and not self._job.cancel_requested:
            self._kept[kept], self._job, self._job_key = self._job, None, None
        else:
            self._kept[kept] = self._launch(session, item, prompt, key)

    def prefetch(self, session, item: MapItem) -> None:
        """Encode the tiles around `visible` ahead of a click (rules in the module docstring); replaces a running
        prefetch. Nothing while a refine runs."""
        self.cancel_prefetch()
        if self.visible is None or self.running or self.kept:
            return
        decoder = self._decoder_for(session, item)
        order = [i for i in decoder.prefetch_order(self.visible) if not decoder.is_cached(i)]
        if not order:
            return

        def run(progress, cancel: threading.Event):
            from floodlabel.core.segment.compute_config import threads_here  # torch stays off the UI thread

            threads_here(1)
            done = 0
            for index in order:
                if cancel.is_set():
                    break
                with self._lock:
                    if cancel.is_set():
                        break
                    if not decoder.is_cached(index):
                        decoder.tile_embedding(index)
                        done += 1
                progress(done)
            return done

        job = BackgroundJob(run, name="tile-prefetch")
        job.finished.connect(self._on_prefetched)
        self._prefetch = job
        job.start()

    @property
    def prefetching(self) -> bool:
        return self._prefetch is not None and self._prefetch.is_running()

    def cancel_prefetch(self) -> None:
        if self._prefetch is not None:
            self._prefetch.cancel()

    def cancel(self, kept: bool = False) -> None:
        """Cancel the running refine and the prefetch (between tiles); `kept`: the kept refines too (closing)."""
        if self._job is not None:
            self._job.cancel()
        self.cancel_prefetch()
        if kept:
            for job in self._kept.values():
                job.cancel()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for job in [self._job, self._prefetch, *self._kept.values()]:
            if job is not None:
                job.join(max(0.0, deadline - time.monotonic()))

    def _launch(self, session, item: MapItem, prompt: Prompt, key: tuple) -> BackgroundJob:
        from floodlabel.core.common.cancel import Cancelled

        decoder = self._decoder_for(session, item)

        def run(progress, cancel: threading.Event):
            def checkpoint() -> None:
                if cancel.is_set():
                    raise Cancelled("refine superseded")

            with self._lock:
                try:
                    result = decoder.decode(prompt, checkpoint, progress, self.visible)
                except Cancelled:
                    return None
            return key, result.mask, result.owned, len(result.tiles), item.key

        job = BackgroundJob(run, name="tiled-refine")
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        self.progress.emit("Full resolution: reading tiles …")
        job.start()
        return job

    def _decoder_for(self, session, item: MapItem) -> TiledDecoder:
        key = (item.key, session.model_id)
        if self._decoder is None or self._decoder_key != key:
            self._decoder = TiledDecoder(session, map_reader(item.path, item.stretch), item.original_size, item.key)
            self._decoder_key = key
        return self._decoder

    def _on_prefetched(self, tiles: int) -> None:
        self.prefetched += int(tiles or 0)

    def _sender_key(self) -> tuple | None:
        """The key of the kept job whose relay sent the signal being handled, else None."""
        sender = self.sender()
        return next((key for key, job in self._kept.items() if job.relay is sender), None)

    def _on_progress(self, tiles: int) -> None:
        current = self.sender() is (self._job.relay if self._job is not None else None)
        kept = self._sender_key()
        if current or (kept is not None and kept[1] == self.last_key):
            self.progress.emit(f"Full resolution: {tiles} tile{'s' if tiles != 1 else ''} decoded …")
        elif kept is not None:
            self.progress.emit(f"Full resolution of an accepted map: {tiles} tile{'s' if tiles != 1 else ''} "
                               "decoded …")

    def _on_finished(self, result: tuple | None) -> None:
        kept = self._sender_key()
        if kept is not None:
            self._kept.pop(kept, None)
            if result is None:  # cancelled on close: the view-level accept stays
                self.kept_failed.emit(kept, "cancelled")
                return
            self.kept_done.emit(kept, np.asarray(result[1], bool), np.asarray(result[2], bool))
        if result is None:
            return
        key, mask, owned, tiles, item_key = result
        if (item_key, key) != (self.last_item, self.last_key):
            return  # another image (of this or another folder) is on screen
        capped = (" (the most per prompt: water beyond these tiles keeps the view-level mask)"
                  if tiles >= MAX_TILES else "")
        self.progress.emit(f"Full resolution: {tiles} tile{'s' if tiles != 1 else ''} in "
                           f"{time.perf_counter() - self._started:.1f} s{capped}")
        self.done.emit(key, np.asarray(mask, bool), np.asarray(owned, bool))

    def _on_failed(self, message: str) -> None:
        kept = self._sender_key()
        if kept is not None:
            self._kept.pop(kept, None)
            self.kept_failed.emit(kept, message)
        self.progress.emit(f"Full-resolution refine failed: {message}")


@dataclass(frozen=True)
class RefineRequest:
    """What an accept of a map needs to finish its mask at full resolution (`SegmentationController.
    pending_refine`). key: (row, prompt key); prompt: full frame; coarse: (H, W) bool, the view-level model mask
    at the full size (strokes not applied); layer: the strokes' (H, W) uint8 layer snapshot or None; gt: (H, W)
    bool or None."""

    key: tuple
    prompt: Prompt
    coarse: np.ndarray
    layer: np.ndarray | None
    gt: np.ndarray | None


Save = Callable[[str, np.ndarray, dict, "str | None", "dict[str, Any] | None"], None]
"""store.accept(rel, mask, state, model_id, metrics)."""


class RefinedAccepts(QObject):
    """Accepts of maps whose full-resolution refine had not come in (rules in the module docstring), each for
    (owner, rel): the project (its StoreLink) and the image it was accepted in. Signals: saved(rel): the
    full-resolution mask was handed to the store; failed(rel, message): it could not be made, the view-level accept
    stays."""

    saved = Signal(str)
    failed = Signal(str, str)

    def __init__(self, refiner: TiledRefiner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.refiner = refiner
        refiner.kept_done.connect(self._on_refined)
        refiner.kept_failed.connect(self._on_failed)
        # (owner, rel) -> (generation, request, the kept refine's key, state, model id, save)
        self._waiting: dict[tuple[object, str], tuple[int, RefineRequest, tuple, dict, str | None, Save]] = {}
        self._generation: dict[tuple[object, str], int] = {}
        self._calls: list[BackgroundCall] = []
        self._composing: dict[QObject, tuple[tuple[object, str], int]] = {}  # a compose call's relay -> entry's

    @property
    def pending(self) -> list[str]:
        """The images whose full-resolution mask is still to be saved (in any project)."""
        return sorted(rel for _, rel in self._waiting)

    def pending_for(self, owner: object) -> list[str]:
        """The images of project `owner` whose full-resolution mask is still to be saved (or being composed)."""
        return sorted(rel for o, rel in self._waiting if o is owner)

    def hold(self, rel: str, request: RefineRequest, session, item: MapItem, state: dict, model_id: str | None,
             save: Save, owner: object = None) -> None:
        """The view-level accept of `rel` was just written in project `owner` (through `save`); save the
        full-resolution one over it when the refine of `request.key` on `item` ends (kept running meanwhile)."""
        generation = self.forget(rel, owner)
        self._waiting[(owner, rel)] = (generation, request, (item.key, request.key), state, model_id, save)
        self.refiner.keep(session, item, request.prompt, request.key)

    def forget(self, rel: str, owner: object = None) -> int:
        """`rel` of project `owner` was accepted or edited again: its waiting full-resolution save (if any) is
        dropped. Returns the new generation of (owner, rel)."""
        self._waiting.pop((owner, rel), None)
        self._generation[(owner, rel)] = self._generation.get((owner, rel), 0) + 1
        return self._generation[(owner, rel)]

    def drop(self, owner: object) -> list[str]:
        """Project `owner` closes without waiting longer: its waiting saves are dropped (their view-level accepts
        stay). Returns their images."""
        rels = self.pending_for(owner)
        for rel in rels:
            self.forget(rel, owner)
        return rels

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for call in self._calls:
            call.join(max(0.0, deadline - time.monotonic()))

    def _on_refined(self, kept: tuple, mask: np.ndarray, owned: np.ndarray) -> None:
        for entry_key, (generation, request, refine_key, *_) in list(self._waiting.items()):
            if refine_key != kept:
                continue
            call = BackgroundCall(lambda r=request: full_resolution_mask(mask, owned, r.coarse, r.layer, r.gt))
            call.succeeded.connect(self._on_composed)
            call.failed.connect(self._on_compose_failed)
            self._calls = [c for c in self._calls if c.is_running()] + [call]
            self._composing[call.relay] = (entry_key, generation)
            call.start()

    def _on_composed(self, result: tuple[np.ndarray, dict | None]) -> None:
        entry_key, generation = self._composing.pop(self.sender(), (None, None))
        entry = self._waiting.get(entry_key) if entry_key is not None else None
        if entry is None or entry[0] != generation:
            return  # accepted or edited again meanwhile: the newer work wins
        del self._waiting[entry_key]
        *_, state, model_id, save = entry
        mask, metrics = result
        save(entry_key[1], mask, state, model_id, metrics)
        self.saved.emit(entry_key[1])

    def _on_compose_failed(self, message: str) -> None:
        entry_key, generation = self._composing.pop(self.sender(), (None, None))
        entry = self._waiting.get(entry_key) if entry_key is not None else None
        if entry is not None and entry[0] == generation:
            del self._waiting[entry_key]
            self.failed.emit(entry_key[1], message)

    def _on_failed(self, kept: tuple, message: str) -> None:
        for entry_key, entry in list(self._waiting.items()):
            if entry[2] == kept:
                del self._waiting[entry_key]
                self.failed.emit(entry_key[1], message)


def full_resolution_mask(refined: np.ndarray, owned: np.ndarray, coarse: np.ndarray, layer: np.ndarray | None,
                         gt: np.ndarray | None) -> tuple[np.ndarray, dict | None]:
    """(the mask to save (H, W) bool, its metrics dict against `gt` or None): `refined` inside `owned`, `coarse`
    elsewhere, the stroke `layer` applied on top. One new (H, W) array; the inputs are not changed."""
    mask = np.where(owned, refined, coarse)
    if layer is not None:
        apply_stroke_layer(mask, layer)
    return mask, (mask_metrics(mask, gt).as_dict() if gt is not None else None)
