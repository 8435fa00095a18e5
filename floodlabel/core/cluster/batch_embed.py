"""Pre-encode a folder of photos into the embedding cache, on this machine or on a Ray cluster (`floodlabel embed`).

    summary = embed_local(paths, "vit_b", cache_dir, progress=...)          # one process, every core
    summary = embed_ray(paths, "vit_b", cache_dir, address="local")         # Ray Data, an actor pool

Both write through `EmbeddingCache.put` under the key a `SegmentationSession` on the same model uses
(`cache_model_id` + `image_key` of the decoded image), so the app, `eval` and `finetune` find every entry: the
entries are the same bytes whichever path wrote them (tests check it).

Resumable and idempotent: an image whose entry is already in the folder (read back and verified) is skipped, so an
interrupted run picks up where it stopped and a re-run adds nothing. Several writers (two runs, or the actors of
one) are safe: each entry is written to a temp file and renamed into place, all or nothing; two writers of the
same image write the same bytes. A broken image is a `failed` outcome with its reason, never the end of the run.

With Ray: the image paths are a Ray dataset; `map_batches` runs `_EmbedActor`, an actor class, so each actor
loads the model once and encodes many images. One actor per GPU when the cluster has GPUs, else one per
`cpus_per_worker` CPUs (torch uses that many threads in it). Every node must see the image paths, the model file
and the cache folder at the same paths (a shared file system).

The cache folder's size limit (`embedding_cache.default_max_disk_bytes`, FLOODLABEL_CACHE_MAX_GB) applies: a run
whose images would not fit is refused before it starts, instead of evicting its own entries.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from floodlabel.core.common.hashing import image_key
from floodlabel.core.common.progress import Progress
from floodlabel.core.segment.embedding_cache import EmbeddingCache
from floodlabel.core.common.errors import FloodLabelError, ImageReadError

ENTRY_BYTES = 256 * 64 * 64 * 2 + 4096  # one float16 SAM entry with its header (every SAM size)
DEFAULT_BATCH = 4
DEFAULT_CPUS_PER_WORKER = 4


@dataclass(frozen=True)
class Outcome:
    """What happened to one image: status "encoded", "skipped" (already cached) or "failed" (reason set)."""

    path: str
    status: str
    reason: str = ""
    seconds: float = 0.0  # decode + hash + encode + write
    started: float = 0.0  # time.time() when this image's work began (for throughput without start-up)
    worker: str = ""  # host:pid of the process that did it


@dataclass
class EmbedSummary:
    """The result of a run. seconds: wall time of the encoding (model loading included; Ray start-up not)."""

    model_id: str
    cache_dir: Path
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    startup_seconds: float = 0.0  # Ray: ray.init / connecting (0 locally)
    workers: int = 1

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def encoded(self) -> int:
        return self.count("encoded")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def images_per_second(self) -> float:
        """Encoded images per second of the run's wall time (0 when nothing was encoded)."""
        return self.encoded / self.seconds if self.encoded and self.seconds > 0 else 0.0

    @property
    def steady_images_per_second(self) -> float:
        """Encoded images per second from the first image's start to the last one's end (model loading and actor
        start-up left out)."""
        enc = [o for o in self.outcomes if o.status == "encoded"]
        if not enc:
            return 0.0
        span = max(o.started + o.seconds for o in enc) - min(o.started for o in enc)
        return len(enc) / span if span > 0 else 0.0

    def lines(self) -> list[str]:
        out = [f"Embedding cache: {self.cache_dir} (model key {self.model_id})",
               f"{self.encoded} encoded, {self.skipped} skipped (already cached), {len(self.failed)} failed; "
               f"{self.seconds:.1f} s with {self.workers} worker{'s' if self.workers != 1 else ''}, "
               f"{self.images_per_second:.2f} images/s"
               + (f" ({self.steady_images_per_second:.2f} images/s once loaded)" if self.encoded > 1 else "")
               + (f"; Ray start-up {self.startup_seconds:.1f} s" if self.startup_seconds else "")]
        out += [f"  failed {o.path}: {o.reason}" for o in self.failed]
        return out


class _BatchCache(EmbeddingCache):
    """An EmbeddingCache without a memory level that trims the folder when asked (`trim`) instead of after every
    put: a trim scans the whole folder, which for tens of thousands of entries on a network file system costs more
    than an encoder run."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, memory_items=0)

    def evict(self) -> None:  # called by put: deferred
        pass

    def trim(self) -> None:
        EmbeddingCache.evict(self)


class EmbedWorker:
    """One model and the cache folder: `process(path)` encodes one image unless its entry is already there."""

    def __init__(self, model: str, cache_dir: str | os.PathLike) -> None:
        from floodlabel.core.models.session import SegmentationSession, load_segmenter

        self.session = SegmentationSession(load_segmenter(model), _BatchCache(Path(cache_dir)))
        if self.session.cache is None:
            raise FloodLabelError(f"{model} has no embeddings to cache (only SAM models do)")
        self.cache: _BatchCache = self.session.cache  # type: ignore[assignment]
        self.model_id = self.session.cache_model_id
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def process(self, path: str) -> Outcome:
        start, t0 = time.time(), time.perf_counter()

        def outcome(status: str, reason: str = "") -> Outcome:
            return Outcome(str(path), status, reason, time.perf_counter() - t0, start, self.name)

        from floodlabel.core.data.images import read_image

        try:
            image = read_image(path)
        except ImageReadError as exc:
            return outcome("failed", exc.reason)
        except Exception as exc:  # noqa: BLE001  (one bad file never ends the run)
            return outcome("failed", f"{type(exc).__name__}: {exc}")
        key = image_key(image)
        if self.cache.get(self.model_id, key) is not None:  # verified read; a bad entry is dropped and redone
            return outcome("skipped")
        try:
            embedding = self.session.segmenter.embed(image)
        except Exception as exc:  # noqa: BLE001  (out of memory, an image the encoder refuses, ...)
            return outcome("failed", f"encoder: {type(exc).__name__}: {exc}")
        self.cache.put(self.model_id, key, embedding)
        if not self.cache.path_for(self.model_id, key).is_file():
            return outcome("failed", f"could not write the cache entry into {self.cache.directory}")
        return outcome("encoded")


def image_paths(data: str | os.PathLike) -> list[Path]:
    """Every image of a dataset folder (any layout `open_dataset` reads; masks are not needed), natural order."""
    from floodlabel.core.data.datasets import open_dataset

    return [p.image for p in open_dataset(data).pairs]


def check_room(count: int, cache_dir: Path) -> None:
    """FloodLabelError when `count` new entries would not fit the cache folder's size limit."""
    from floodlabel.core.segment.embedding_cache import MAX_GB_ENV, default_max_disk_bytes

    limit = default_max_disk_bytes()
    need = count * ENTRY_BYTES
    if need > limit:
        raise FloodLabelError(
            f"{count} images need up to {need / 2**30:.1f} GiB of embeddings, but the cache folder {cache_dir} is "
            f"limited to {limit / 2**30:.1f} GiB (older entries would be evicted): set {MAX_GB_ENV} to at least "
            f"{-(-need // 2**30) + 1} here and on every machine that uses the folder")


def embed_local(paths: Sequence[str | os.PathLike], model: str, cache_dir: str | os.PathLike,
                progress: Progress | None = None) -> EmbedSummary:
    """Encode every image not cached yet in this process (the encoder uses every core)."""
    cache_dir = Path(cache_dir)
    check_room(len(paths), cache_dir)
    t0 = time.perf_counter()
    worker = EmbedWorker(model, cache_dir)
    summary = EmbedSummary(worker.model_id, cache_dir)
    if progress:
        progress(0, len(paths))
    try:
        for i, path in enumerate(paths):
            summary.outcomes.append(worker.process(str(path)))
            if progress:
                progress(i + 1, len(paths))
    finally:
        worker.cache.trim()
        summary.seconds = time.perf_counter() - t0
    return summary


# ---------------------------------------------------------------------------------------------------------- Ray


class _EmbedActor:
    """Ray Data actor: loads the model once, then encodes the batches of paths it is given."""

    def __init__(self, model: str, cache_dir: str, env: dict[str, str], threads: int) -> None:
        from floodlabel.core.cluster.connection import apply_env

        apply_env(env)
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self.worker = EmbedWorker(model, cache_dir)

    def __call__(self, batch: dict) -> dict:
        outcomes = [self.worker.process(str(p)) for p in batch["path"]]
        self.worker.cache.trim()
        return {
            "path": [o.path for o in outcomes], "status": [o.status for o in outcomes],
            "reason": [o.reason for o in outcomes], "seconds": [o.seconds for o in outcomes],
            "started": [o.started for o in outcomes], "worker": [o.worker for o in outcomes],
            "model_id": [self.worker.model_id] * len(outcomes),
        }


def plan_workers(cpus: int, gpus: int, workers: int | None, cpus_per_worker: int | None) -> tuple[int, int, int]:
    """(actors, CPUs per actor, GPUs per actor) for a cluster with `cpus` CPUs and `gpus` GPUs: one actor per GPU
    when there are GPUs, else one per `cpus_per_worker` CPUs (default DEFAULT_CPUS_PER_WORKER, at most all)."""
    if gpus > 0:
        per = cpus_per_worker or max(1, min(DEFAULT_CPUS_PER_WORKER, cpus // gpus))
        return (min(workers or gpus, gpus), per, 1)
    per = cpus_per_worker or max(1, min(DEFAULT_CPUS_PER_WORKER, cpus))
    return (workers or max(1, cpus // per), per, 0)


def embed_ray(paths: Sequence[str | os.PathLike], model: str, cache_dir: str | os.PathLike, address: str = "local",
              batch: int = DEFAULT_BATCH, workers: int | None = None, cpus_per_worker: int | None = None,
              progress: Progress | None = None) -> EmbedSummary:
    """Encode every image not cached yet with a Ray Data actor pool (see the module docstring).

    address: "local" (a Ray on this machine, on loopback) or a cluster address; a Ray already initialised in this
    process is used as it is. Paths, model and cache_dir must be absolute paths every node sees."""
    from floodlabel.core.cluster import connection as cluster

    cache_dir = Path(cache_dir).absolute()
    check_room(len(paths), cache_dir)
    t_start = time.perf_counter()
    ray, started = cluster.connect(address)
    startup = time.perf_counter() - t_start
    try:
        cpus, gpus = cluster.resources(ray)
        actors, per_cpu, per_gpu = plan_workers(cpus, gpus, workers, cpus_per_worker)
        actors = max(1, min(actors, -(-len(paths) // max(1, batch)))) if paths else 1
        t0 = time.perf_counter()
        summary = EmbedSummary("", cache_dir, workers=actors, startup_seconds=startup)
        if progress:
            progress(0, len(paths))
        if paths:
            ds = ray.data.from_items([{"path": str(Path(p).absolute())} for p in paths])
            ds = ds.map_batches(
                _EmbedActor, batch_size=max(1, batch), batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors),
                fn_constructor_kwargs=dict(model=str(model), cache_dir=str(cache_dir), env=cluster.worker_env(),
                                           threads=per_cpu),
                num_cpus=per_cpu, num_gpus=per_gpu)
            for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i in range(len(out["path"])):
                    summary.model_id = str(out["model_id"][i])
                    summary.outcomes.append(Outcome(str(out["path"][i]), str(out["status"][i]), str(out["reason"][i]),
                                                    float(out["seconds"][i]), float(out["started"][i]),
                                                    str(out["worker"][i])))
                if progress:
                    progress(len(summary.outcomes), len(paths))
        order = {str(Path(p).absolute()): i for i, p in enumerate(paths)}
        summary.outcomes.sort(key=lambda o: order.get(o.path, len(order)))
        summary.seconds = time.perf_counter() - t0
        return summary
    finally:
        cluster.disconnect(ray, started)
