"""`eval --ray ADDRESS|local`: one model's image pairs evaluated as Ray tasks, with results identical to a local run.

Each task evaluates one pair with `worker.evaluate_in_worker`, the very function the `--jobs` workers call (and
through it `worker.evaluate_pair`, the serial loop's). A Ray worker process keeps the model it opened
(`worker.init_worker`) for the next tasks of the same run, so a model is loaded once per worker process, not
once per image. Results are taken back in pair order, so rows, skipped entries and progress come out exactly as in
the serial loop. Workers see the driver's FLOODLABEL_* variables (`cluster.worker_env`) and --base files.

Threads: float results depend on how many threads a product is split over (bf16 encoder and decoder products on
CPUs, OpenCV's GrabCut for classic: measured here, 1 vs 2 threads changes IoUs in the 3rd-4th decimal). So each
task runs with the driver's own torch and OpenCV thread counts (what a local run here uses) and asks Ray for that
many CPUs (at most a node's): on the same hardware the results are then the local run's, bit for bit. `threads`
trades that for more tasks at once (e.g. 1 CPU per task); nodes with other CPUs (another instruction set) can
differ in the last bits whatever the threads. On a cluster with GPUs a SAM task takes one GPU.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from floodlabel.core.cluster import connection as cluster
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.common.progress import Progress
from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.evaluation import worker
from floodlabel.core.evaluation.results import EvaluationResult
from floodlabel.core.evaluation.worker import EvalContext, PairOutcome
from floodlabel.core.models.registry import CLASSIC

POLL_S = 0.2


def evaluate_model_ray(
    address: str,
    ctx: EvalContext,
    pairs: list[ImagePair],
    result: EvaluationResult,
    bad_stems: set[str],
    done: int,
    total: int,
    progress: Progress | None,
    cancel: threading.Event | None,
    threads: int | None = None,
) -> int:
    """Evaluate `pairs` for ctx.model as Ray tasks, appending to result (rows, skipped, model_ids) and bad_stems
    exactly as the serial loop does. Returns the updated count of processed pairs. A Ray already running in this
    process (`cluster.ray_session`) is used; otherwise one is started or joined for this call only.
    threads: torch and OpenCV threads per task (None: this process's, for results identical to a local run)."""
    import cv2
    import torch

    from floodlabel.core.sam.decoder_checkpoint import base_checkpoints  # torch: only when there is work

    torch_threads, cv_threads = (threads, threads) if threads else (torch.get_num_threads(),
                                                                      max(1, cv2.getNumThreads()))
    ray, started = cluster.connect(address)
    try:
        _, gpus = cluster.resources(ray)
        node_cpus = max([int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])
        task = ray.remote(_evaluate_pair_task).options(
            num_cpus=max(1, min(torch_threads, node_cpus)), num_gpus=1 if gpus and ctx.model != CLASSIC else 0,
            max_retries=0)
        path = Path(ctx.model).expanduser()
        if ctx.model != CLASSIC and path.is_file():  # workers' cwd differs
            ctx = dataclasses.replace(ctx, source=str(path.absolute()))
        args = (ctx, cluster.worker_env(), [str(p) for p in base_checkpoints()], torch_threads, cv_threads)
        todo = [p for p in pairs if p.stem not in bad_stems]
        refs = {p.stem: task.remote(*args, p) for p in todo}
        try:
            for pair in pairs:
                if cancel is not None and cancel.is_set():
                    break
                ref = refs.get(pair.stem)
                if ref is not None:
                    outcome = _wait(ray, ref, cancel)
                    if outcome is None:  # cancelled while waiting
                        break
                    del refs[pair.stem]  # finished: never cancelled below
                    result.add_outcome(ctx.model, pair.stem, outcome, bad_stems)
                done += 1
                if progress:
                    progress(done, total)
        finally:
            # only tasks not collected (cancel or an error stopped the loop). Cancelling a task that has finished
            # can crash Ray 2.60's driver ("Tried to complete task that was not pending"): ask which are still going
            pending = list(refs.values())
            if pending:
                _, running = ray.wait(pending, num_returns=len(pending), timeout=0)
                for ref in running:
                    try:
                        ray.cancel(ref)
                    except Exception:  # noqa: BLE001  (finished meanwhile)
                        pass
    finally:
        cluster.disconnect(ray, started)
    return done


def _wait(ray, ref, cancel: threading.Event | None):
    """ray.get(ref), or None as soon as `cancel` is set. A task's error becomes one readable line."""
    while True:
        ready, _ = ray.wait([ref], timeout=POLL_S if cancel is not None else None)
        if ready:
            try:
                return ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                if isinstance(cause, FloodLabelError):
                    raise FloodLabelError(str(cause)) from None
                raise FloodLabelError(f"an evaluation task failed on the Ray cluster: "
                                      f"{type(cause).__name__}: {cause}") from None
            except ray.exceptions.RayError as exc:
                raise FloodLabelError(f"an evaluation task was lost on the Ray cluster ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if cancel is not None and cancel.is_set():
            return None


# ------------------------------------------------------------------------------------------------ in the worker

_prepared: dict = {}
"""This Ray worker process's set-up: {"key": (context, driver env, base checkpoints)} of the run it serves."""


def _evaluate_pair_task(ctx: EvalContext, env: dict[str, str], bases: list[str], torch_threads: int,
                        cv_threads: int, pair: ImagePair) -> PairOutcome:
    """Runs in a Ray worker: one pair's outcome, as `worker.evaluate_in_worker` in a `--jobs` process."""
    key = (ctx, tuple(sorted(env.items())), tuple(bases))
    if _prepared.get("key") != key or worker.worker_context() != ctx:
        from floodlabel.core.sam.decoder_checkpoint import use_base_checkpoints

        _prepared.clear()
        worker.reset_worker()
        cluster.apply_env(env)
        use_base_checkpoints(bases)
        worker.init_worker(ctx)
        _prepared["key"] = key
    worker.set_threads(torch_threads, cv_threads)  # init_worker set 1 (--jobs); the driver's count gives its results
    return worker.evaluate_in_worker(pair)
