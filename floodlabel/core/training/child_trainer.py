"""Fine-tuning in a child process at a low OS priority, so that the window's clicks keep the CPU (issue 16).

    run = ChildTraining(items, "vit_b", None, Path("ft.pth"), FinetuneSettings(epochs=5))
    result = run.run(progress=on_progress, cancel=stop_event)     # blocks: call it from a worker thread

Why: `finetune` in the window's process shares the torch thread pool and the GIL with the click's decode (a click
during training took 62 ms against 33 ms, issue 16). The child runs at nice +TRAINING_NICE with its own torch thread
count (`training_threads`: the cores less one), so the OS scheduler gives a click the cores.

What crosses: the items (paths and recorded prompts; masks are read in the child) and the settings go in once, by
pickle (a `multiprocessing` spawn child: a fresh interpreter, no fork of a process with threads and Qt); the
checkpoint goes out on disk (`finetune` saves the best epoch atomically whenever validation improves, so a killed
child leaves the best epoch so far); progress events, the result or a one-line error come back through a pipe, and
"cancel" goes in through it. The embedding cache is the same folder (FLOODLABEL_CACHE_DIR is inherited).

Faults: a child that dies (SIGKILL, out of memory, an exception in torch) ends `run` with a TrainingError that says
how it ended and where the best epoch so far is; every run starts a new child. The child ends with its parent
(PR_SET_PDEATHSIG on Linux; elsewhere when the pipe closes, which also cancels the run).

Memory: the child holds its own torch and the base model (vit_b: about 1.3 GB resident, like the pre-encoding child
of core/models/background_encoder.py) while a run lasts, and exits with it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from floodlabel.core.common import background_work
from floodlabel.core.training.embeddings import TrainingError
from floodlabel.core.training.finetune_progress import FinetuneResult, Progress

TRAINING_NICE = 10
"""How much lower than the window the training child's scheduling priority is."""
CANCEL_GRACE_S = 60.0
"""After a cancel, the child has this long to save and report before it is killed."""
MODE_ENV = "FLOODLABEL_TRAINING"
"""'process' (default): the Fine-tune panel trains in a child; 'thread': in the window's process, as before."""


def training_threads(cpus: int | None = None) -> int:
    """torch threads for the child: every core but one, which stays with the window (at least 1)."""
    return max(1, (cpus if cpus is not None else os.cpu_count() or 1) - 1)


def use_child_process() -> bool:
    """Whether the window trains in a child: MODE_ENV is not 'thread' and the machine has room for a second model
    copy (`background_encoder.worth_a_process`)."""
    from floodlabel.core.models.background_encoder import worth_a_process

    return os.environ.get(MODE_ENV, "process") != "thread" and worth_a_process()


class ChildTraining:
    """One `finetune` run in a spawned child process (see the module docstring).

    items: TrainingItems (picklable: mask paths or `partial(read_mask_png, ...)`); base_model: a registry name or a
    checkpoint path, opened in the child with `config` (a ComputeConfig or None); out: the checkpoint file.
    After `run` starts the child: `pid`, and `started` = {"pid", "nice", "threads"} as the child reported them.
    """

    def __init__(self, items: Sequence, base_model: str, config, out: str | os.PathLike, settings, *,
                 nice: int = TRAINING_NICE, threads: int | None = None) -> None:
        self.items, self.base_model, self.config = list(items), str(base_model), config
        self.out, self.settings = Path(out), settings
        self.nice = nice
        self.threads = training_threads() if threads is None else max(1, int(threads))
        self.pid: int | None = None
        self.started: dict | None = None

    def run(self, progress: Progress | None = None, cancel: threading.Event | None = None) -> FinetuneResult:
        """Train in the child and return its FinetuneResult; `progress(TrainingProgress)` is called in this thread.
        Raises TrainingError with the child's one-line error, or with how the child ended when it died."""
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_child_main, name="floodlabel-finetune", daemon=True,
                           args=(theirs, self.items, self.base_model, self.config, str(self.out), self.settings,
                                 self.nice, self.threads, os.getpid()))
        proc.start()
        theirs.close()
        self.pid = proc.pid
        with background_work.holding("fine-tuning", proc.pid):  # the window stops it while it decodes a click
            return self._relay(proc, ours, progress, cancel)

    def _relay(self, proc, ours, progress: Progress | None, cancel: threading.Event | None) -> FinetuneResult:
        """The child's messages until its result, error or end (see `run`)."""
        cancel_sent_at: float | None = None
        try:
            while True:
                if cancel is not None and cancel.is_set() and cancel_sent_at is None:
                    cancel_sent_at = time.monotonic()
                    _send(ours, ("cancel",))
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > CANCEL_GRACE_S:
                    proc.kill()
                try:
                    message = background_work.child_message(ours, proc)
                except EOFError:
                    break  # the child is gone: see how it ended below
                if message is None:
                    continue
                kind, payload = message
                if kind == "started":
                    self.started = payload
                elif kind == "progress" and progress is not None:
                    progress(payload)
                elif kind == "result":
                    return payload
                elif kind == "error":
                    raise TrainingError(payload)
        finally:
            ours.close()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        raise TrainingError(self._died_message(proc.exitcode))

    def _died_message(self, code: int | None) -> str:
        how = (f"killed by signal {-code}" + (" (SIGKILL: out of memory?)" if code == -9 else "")
               if code is not None and code < 0 else f"exit status {code}")
        kept = (f"; the best epoch so far is in {self.out}" if self.out.is_file()
                else "; no epoch had finished, nothing was saved")
        return f"the training process stopped ({how}){kept}. Start again to run a new one"


def _send(conn, msg) -> None:
    try:
        conn.send(msg)
    except (OSError, ValueError):
        pass  # the other side is gone


# ---------------------------------------------------------------------------------------------------- the child


def _child_main(conn, items, base_model: str, config, out: str, settings, nice: int, threads: int,
                parent: int) -> None:
    """The child: nice, threads, open the base, `finetune`, report. Never raises (one line goes back instead)."""
    from floodlabel.core.common.background_work import die_with_parent

    die_with_parent(parent)
    try:
        os.nice(nice)
    except (AttributeError, OSError):
        pass
    lock = threading.Lock()

    def say(kind: str, payload=None) -> None:
        with lock:
            _send(conn, (kind, payload))

    cancel = threading.Event()

    def listen() -> None:  # "cancel" from the parent; a closed pipe (the parent went away) cancels too
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                cancel.set()
                return
            if msg and msg[0] == "cancel":
                cancel.set()

    threading.Thread(target=listen, name="floodlabel-finetune-listen", daemon=True).start()
    try:
        import torch

        torch.set_num_threads(threads)
        niceness = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None
        say("started", {"pid": os.getpid(), "nice": niceness, "threads": torch.get_num_threads()})
        from floodlabel.core.models.session import SegmentationSession
        from floodlabel.core.training.finetune import finetune

        session = SegmentationSession.open(base_model, config=config)
        if not session.segmenter.capabilities.finetune_decoder:
            raise TrainingError(f"{base_model} is not a SAM model: only SAM's decoder can be fine-tuned")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        result = finetune(items, session, out, settings, progress=lambda event: say("progress", event),
                          cancel=cancel)
        say("result", result)
    except Exception as exc:  # noqa: BLE001 - one line to the parent
        from floodlabel.core.common.errors import FloodLabelError

        say("error", str(exc) if isinstance(exc, FloodLabelError) else f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
