"""Proposals for a whole folder (`floodlabel propose`): a text prompt ("water") run on every image by a model whose
capabilities say `text_prompt` (SAM 3), each result stored as a *proposed* mask in the project store for review.

    summary = propose_local(store, paths, session, "water", 0.5, progress=...)          # this process
    summary = propose_ray(store, paths, "sam3", "water", 0.5, address="local")          # Ray Data, an actor pool

What one image gets: the instances of the phrase at the image's native size (after EXIF orientation); the mask is the
union of those with score >= threshold (`core.annotation.text_step.text_base`); its confidence is the mean score of
those instances, 0.0 when none passes (`text_step.confidence`: empty proposals sort first in review); the
annotation state is the text step (phrase, threshold, nothing dropped), so the window opens it as a text prompt.

Resumable and idempotent: images that already have a proposal, work in progress or an accepted mask are skipped
before any model work (`ProjectStore.statuses`), and `ProjectStore.propose` refuses to replace anything, so an
interrupted run resumes where it stopped and a second run adds none. Only this process writes the store (it holds
the writer lock); with Ray the actors return each mask as PNG bytes and this process stores it. Embeddings go
through the session's embedding cache (the window finds them), like `embed`'s. A broken image is a `failed`
outcome with its reason, never the end of the run.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from floodlabel.core.annotation.annotation import Annotation
from floodlabel.core.annotation.prompts import TextPrompt
from floodlabel.core.annotation.text_step import confidence, kept_instances, text_base
from floodlabel.core.common.errors import FloodLabelError, ImageReadError, ModelError
from floodlabel.core.common.progress import Progress

TEXT_MODELS_HINT = "SAM 3 has it: `floodlabel models download sam3`, then --model sam3"


@dataclass(frozen=True)
class ProposeOutcome:
    """One image: status "proposed", "skipped" (it had a proposal or work already) or "failed" (reason set).
    kept / found: instances above the threshold / returned; seconds: read + embed + segment."""

    path: str
    status: str
    reason: str = ""
    confidence: float = 0.0
    kept: int = 0
    found: int = 0
    seconds: float = 0.0


@dataclass
class ProposeSummary:
    phrase: str
    threshold: float
    model_id: str = ""
    outcomes: list[ProposeOutcome] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def proposed(self) -> int:
        return self.count("proposed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> list[ProposeOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def lines(self) -> list[str]:
        done = [o for o in self.outcomes if o.status == "proposed"]
        mean = f"; mean confidence {np.mean([o.confidence for o in done]):.3f}" if done else ""
        per = f", {sum(o.seconds for o in done) / len(done):.2f} s per image" if done else ""
        out = [f"Proposals for {self.phrase!r} (threshold {self.threshold:g}, model {self.model_id or '?'}): "
               f"{self.proposed} proposed, {self.skipped} skipped (already proposed or worked on), "
               f"{len(self.failed)} failed; {self.seconds:.1f} s{per}{mean}"]
        out += [f"  failed {o.path}: {o.reason}" for o in self.failed]
        return out


def require_text_prompt(segmenter, name: str) -> None:
    """ModelError (one line) when `segmenter`'s capabilities do not include the text prompt."""
    if not segmenter.capabilities.text_prompt:
        raise ModelError(f"{name} has no text prompt; {TEXT_MODELS_HINT}")


@dataclass(frozen=True)
class Proposal:
    """What a worker makes of one image: mask (H, W) bool at the native size, its confidence, the state."""

    mask: np.ndarray
    confidence: float
    state: dict
    kept: int
    found: int


def propose_image(session, image: np.ndarray, text: TextPrompt) -> Proposal:
    """The proposal for one (H, W, 3) uint8 RGB image (see the module docstring). session: a SegmentationSession
    whose segmenter implements `TextSegmenter`."""
    embedding = session.embedding(image)
    instances = session.segmenter.segment_text(embedding, text.phrase)
    masks = np.asarray(instances.masks, bool).reshape(-1, *image.shape[:2])
    annotation = Annotation(image.shape[:2])
    annotation.run_text(text.phrase, text.threshold)
    mask = text_base(masks, instances.scores, text.threshold) if len(masks) else np.zeros(image.shape[:2], bool)
    return Proposal(mask, confidence(instances.scores, text.threshold), annotation.to_dict(),
                    len(kept_instances(instances.scores, text.threshold)), len(instances))


def pending_paths(store, paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(paths whose images have no proposal and no work, paths skipped) in the given order."""
    from floodlabel.core.store.project_store import relative_image_path

    statuses = store.statuses()
    todo, skipped = [], []
    for p in paths:
        (skipped if relative_image_path(p, store.data_root) in statuses else todo).append(Path(p))
    return todo, skipped


def propose_local(store, paths: Sequence[str | os.PathLike], session, phrase: str, threshold: float,
                  progress: Progress | None = None, cancel=None) -> ProposeSummary:
    """Propose every image of `paths` (inside `store.data_root`) that has no proposal and no work, in this process.
    cancel: a callable returning True to stop after the current image (what was stored stays)."""
    text = TextPrompt(phrase, threshold)
    require_text_prompt(session.segmenter, session.source or session.model_id)
    t0 = time.perf_counter()
    summary = ProposeSummary(text.phrase, text.threshold, session.model_id)
    todo, skipped = pending_paths(store, paths)
    summary.outcomes += [ProposeOutcome(str(p), "skipped") for p in skipped]
    if progress:
        progress(0, len(todo))
    for i, path in enumerate(todo):
        if cancel is not None and cancel():
            break
        summary.outcomes.append(_store_outcome(store, path, _work(session, path, text), session.model_id))
        if progress:
            progress(i + 1, len(todo))
    summary.seconds = time.perf_counter() - t0
    return summary


def _work(session, path: Path, text: TextPrompt) -> tuple[Proposal | None, str, float]:
    """(proposal or None, failure reason, seconds) for one image."""
    from floodlabel.core.data.images import read_image

    t0 = time.perf_counter()
    try:
        image = read_image(path)
        return propose_image(session, image, text), "", time.perf_counter() - t0
    except ImageReadError as exc:
        return None, exc.reason, time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001  (one bad image, or one the model refuses, never ends the run)
        return None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0


def _store_outcome(store, path: Path, work: tuple[Proposal | None, str, float], model_id: str) -> ProposeOutcome:
    proposal, reason, seconds = work
    if proposal is None:
        return ProposeOutcome(str(path), "failed", reason, seconds=seconds)
    try:
        added = store.propose(path, proposal.mask, proposal.confidence, proposal.state, model_id=model_id)
    except FloodLabelError as exc:
        return ProposeOutcome(str(path), "failed", str(exc), seconds=seconds)
    return ProposeOutcome(str(path), "proposed" if added else "skipped", "", proposal.confidence, proposal.kept,
                          proposal.found, seconds)


# ---------------------------------------------------------------------------------------------------------- Ray


class _ProposeActor:
    """Ray Data actor: loads the model once, then makes the proposals of the batches of paths it is given (the mask
    comes back as PNG bytes; the driver stores it)."""

    def __init__(self, model: str, cache_dir: str | None, phrase: str, threshold: float, env: dict[str, str],
                 threads: int) -> None:
        from floodlabel.core.cluster.connection import apply_env

        apply_env(env)
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        from floodlabel.core.models.session import SegmentationSession

        self.session = SegmentationSession.open(model, Path(cache_dir) if cache_dir else None)
        self.refusal = "" if self.session.segmenter.capabilities.text_prompt else \
            f"{model} has no text prompt; {TEXT_MODELS_HINT}"
        self.text = TextPrompt(phrase, threshold)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        import json

        from floodlabel.core.store.mask_files import encode_mask_png

        out: dict[str, list] = {k: [] for k in ("path", "png", "confidence", "state", "kept", "found", "reason",
                                                "seconds", "model_id")}
        for p in batch["path"]:
            proposal, reason, seconds = (None, self.refusal, 0.0) if self.refusal else \
                _work(self.session, Path(str(p)), self.text)
            out["path"].append(str(p))
            out["png"].append(encode_mask_png(proposal.mask) if proposal else b"")
            out["confidence"].append(proposal.confidence if proposal else 0.0)
            out["state"].append(json.dumps(proposal.state) if proposal else "")
            out["kept"].append(proposal.kept if proposal else 0)
            out["found"].append(proposal.found if proposal else 0)
            out["reason"].append(reason)
            out["seconds"].append(seconds)
            out["model_id"].append(self.session.model_id)
        return out


def propose_ray(store, paths: Sequence[str | os.PathLike], model: str, phrase: str, threshold: float,
                address: str = "local", cache_dir: str | os.PathLike | None = None, batch: int = 2,
                workers: int | None = None, cpus_per_worker: int | None = None,
                progress: Progress | None = None) -> ProposeSummary:
    """`propose_local` on a Ray Data actor pool (one model load per actor; see `batch_embed.plan_workers`). Paths,
    model and cache_dir must be absolute paths every node sees."""
    import json

    from floodlabel.core.cluster import connection as cluster
    from floodlabel.core.cluster.batch_embed import plan_workers
    from floodlabel.core.store.mask_files import decode_mask_png

    text = TextPrompt(phrase, threshold)
    summary = ProposeSummary(text.phrase, text.threshold)
    todo, skipped = pending_paths(store, paths)
    summary.outcomes += [ProposeOutcome(str(p), "skipped") for p in skipped]
    if progress:
        progress(0, len(todo))
    if not todo:
        return summary
    t0 = time.perf_counter()
    ray, started = cluster.connect(address)
    try:
        cpus, gpus = cluster.resources(ray)
        actors, per_cpu, per_gpu = plan_workers(cpus, gpus, workers, cpus_per_worker)
        actors = max(1, min(actors, -(-len(todo) // max(1, batch))))
        summary.workers = actors
        ds = ray.data.from_items([{"path": str(p.absolute())} for p in todo])
        ds = ds.map_batches(
            _ProposeActor, batch_size=max(1, batch), batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs=dict(model=str(model), cache_dir=str(cache_dir) if cache_dir else None,
                                       phrase=text.phrase, threshold=text.threshold, env=cluster.worker_env(),
                                       threads=per_cpu),
            num_cpus=per_cpu, num_gpus=per_gpu)
        done = 0
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(out["path"])):
                path = Path(str(out["path"][i]))
                summary.model_id = str(out["model_id"][i])
                png = bytes(out["png"][i])
                proposal = None
                if png:
                    mask = decode_mask_png(png, path, str(path))
                    proposal = Proposal(mask, float(out["confidence"][i]), json.loads(str(out["state"][i])),
                                        int(out["kept"][i]), int(out["found"][i]))
                summary.outcomes.append(_store_outcome(store, path, (proposal, str(out["reason"][i]),
                                                                     float(out["seconds"][i])), summary.model_id))
                done += 1
            if progress:
                progress(done, len(todo))
    finally:
        cluster.disconnect(ray, started)
    summary.seconds = time.perf_counter() - t0
    return summary
