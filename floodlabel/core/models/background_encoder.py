"""Pre-encoding in a child process at a low OS priority, so that the window's clicks keep the CPU.

Why: in the window's process the prefetch encoder shares the torch thread pool and the GIL with the click's decode
(and pauses only between encoder blocks, 0.3-0.5 s apart): on 2 cores a click during a prefetch took about twice
as long (issue 16). In a child at nice +10 with its own torch thread count, the OS scheduler gives a click the cores.

Results travel through what exists: the child writes the embedding cache on disk (the same folder, the same keys:
the same model opened the same way on the same machine), and the window's next image is a cache hit (~1 ms).
Only short JSON lines cross the pipes.

Memory: the child holds a second copy of the model and its own torch. Measured with vit_b (bf16, 893x551 images,
a window pre-encoding 3 images): the child 1.3 GB resident, 2.5 GB at its peak while encoding, beside the
window's 1.6 / 2.8 GB (`benchmarks/bench_prefetch.py` prints the child's). It starts on the first request and exits after IDLE_EXIT_S without one, or when the parent
closes it or dies (its stdin closes); on a machine with less than MIN_MEMORY_BYTES the window keeps the prefetch in
its own process (`worth_a_process`).

Protocol of `python -m floodlabel.core.models.background_encoder MODEL [--cache-dir D] [--nice N] [--threads T]
[--idle S]`: stdin one JSON object per line, {"image": path}; stdout {"ready": cache model id} once the model is
loaded, then per image {"done": path, "seconds": s} (s = 0 when the cache had it) or {"failed": path, "error": line},
and {"error": line} (then exit 1) when the model cannot be loaded.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from floodlabel.core.common.background_work import CAN_STOP, die_with_parent

BACKGROUND_NICE = 10
"""How much lower than the window the child's scheduling priority is."""


def background_threads() -> int:
    """torch threads in the child: every core this process may use where a click's decode stops the child
    (`background_work.CAN_STOP`: POSIX), since it then never runs beside a decode, else 1 (the other core stays with
    the decode). On the 2-core VM (bench_window, row 7) a pre-encoding of an 893x551 image took 5.3 s with 2 threads
    against 7.9 s with 1, and the clicks meanwhile were not slower."""
    if not CAN_STOP:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


BACKGROUND_THREADS = background_threads()
"""torch threads in the child (`background_threads`)."""
IDLE_EXIT_S = 120.0
"""The child exits after this long without a request (its model's memory comes back)."""

MIN_MEMORY_BYTES = 8 << 30
"""Below this much RAM the prefetch stays in the window's process: a second model copy would not fit well."""


def worth_a_process(total_memory: int | None = None) -> bool:
    """Whether this machine has room for the child's second model copy (MIN_MEMORY_BYTES of RAM or more).
    total_memory: bytes (default: the machine's, from sysconf; unknown counts as enough)."""
    if total_memory is None:
        try:
            total_memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return True
    return total_memory >= MIN_MEMORY_BYTES


Event = Callable[[str, str, object], None]
"""on_event(kind, image path or "", detail): ("ready", "", cache model id), ("done", path, seconds),
("failed", path, message), ("exited", "", message or None): the child ended (None: it was idle or closed)."""


class BackgroundEncoder:
    """One child process pre-encoding images into the embedding cache; started when needed, restarted after it
    exits. `on_event` is called from a reader thread (relay it to the UI thread)."""

    def __init__(self, model: str, cache_dir: Path | None, on_event: Event, *, nice: int = BACKGROUND_NICE,
                 threads: int = BACKGROUND_THREADS, idle_exit_s: float = IDLE_EXIT_S) -> None:
        self.model, self.cache_dir, self.on_event = str(model), cache_dir, on_event
        self.nice, self.threads, self.idle_exit_s = nice, threads, idle_exit_s
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None
        self._closed = False
        self._readers: list[threading.Thread] = []  # one per child started; close() joins them
        self.starts = 0
        """How many children were started (a restart after a crash counts)."""

    @property
    def pid(self) -> int | None:
        """The running child's process id, or None."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def submit(self, image: str | os.PathLike) -> None:
        """Pre-encode `image` (a photo's path) into the cache: a "done" or "failed" event follows (a child that
        dies meanwhile gives "exited" instead). Starts a child when none runs."""
        line = json.dumps({"image": str(image)}) + "\n"
        with self._lock:
            if self._closed:
                return
            for _ in range(2):  # a child that exited since the last request: start another once
                child = self._child if self._child is not None and self._child.poll() is None else self._start()
                try:
                    child.stdin.write(line)
                    child.stdin.flush()
                    return
                except (BrokenPipeError, OSError, ValueError):
                    self._child = None

    def close(self, timeout: float = 5.0) -> None:
        """End the child (its stdin closes: it exits after the image it is on, else it is killed), then wait for
        its reader threads: once close() returns, `on_event` is called no more, and no reader thread is left to drop
        the last reference to what `on_event` holds (a Qt relay must die on the UI thread)."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
            readers, self._readers = self._readers, []
        if child is not None:
            try:
                child.stdin.close()
            except OSError:
                pass
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for reader in readers:
            if reader is not threading.current_thread():
                reader.join(timeout)

    def _start(self) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "floodlabel.core.models.background_encoder", self.model, "--nice",
               str(self.nice), "--threads", str(self.threads), "--idle", str(self.idle_exit_s), "--parent",
               str(os.getpid())]
        if self.cache_dir is not None:
            cmd += ["--cache-dir", str(self.cache_dir)]
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, bufsize=1)
        self._child = child
        self.starts += 1
        reader = threading.Thread(target=self._read, args=(child,), name="floodlabel-background-encoder",
                                  daemon=True)
        self._readers = [r for r in self._readers if r.is_alive()] + [reader]
        reader.start()
        return child

    def _read(self, child: subprocess.Popen) -> None:
        error = None
        for line in child.stdout:  # blocks in the pipe read, without the GIL
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "ready" in msg:
                self.on_event("ready", "", msg["ready"])
            elif "done" in msg:
                self.on_event("done", msg["done"], float(msg.get("seconds", 0.0)))
            elif "failed" in msg:
                self.on_event("failed", msg["failed"], str(msg.get("error", "")))
            elif "error" in msg:
                error = str(msg["error"])
        code = child.wait()
        if code == 0:
            self.on_event("exited", "", None)
        else:
            why = error or (f"killed by signal {-code}" if code < 0 else f"exit status {code}")
            self.on_event("exited", "", f"the background encoder stopped ({why})")


# ---------------------------------------------------------------------------------------------------- the child


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="floodlabel-background-encoder")
    parser.add_argument("model")
    parser.add_argument("--cache-dir")
    parser.add_argument("--nice", type=int, default=BACKGROUND_NICE)
    parser.add_argument("--threads", type=int, default=BACKGROUND_THREADS)
    parser.add_argument("--idle", type=float, default=IDLE_EXIT_S)
    parser.add_argument("--parent", type=int, help="exit when this process (the window's) is gone")
    args = parser.parse_args(argv)
    if args.parent is not None:
        die_with_parent(args.parent)
    try:
        os.nice(args.nice)
    except (AttributeError, OSError):
        pass
    out = sys.stdout

    def say(**msg: object) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    try:
        import torch

        torch.set_num_threads(max(1, args.threads))
        from floodlabel.core.models.session import SegmentationSession

        session = SegmentationSession.open(args.model, cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    except Exception as exc:  # noqa: BLE001 - one line to the parent
        say(error=f"cannot load {args.model}: {exc}")
        return 1
    if session.cache is not None:
        session.cache.memory_items = 0  # written to disk for the window and forgotten: the child stays small
    say(ready=session.cache_model_id)
    from floodlabel.core.data.datasets import ImagePair
    from floodlabel.core.data.image_item import load_image_item

    lines: queue.Queue[str] = queue.Queue()

    def read_requests() -> None:  # a thread: the main loop waits on the queue with the idle timeout
        for request in sys.stdin:
            lines.put(request)
        lines.put("")  # end of stdin

    threading.Thread(target=read_requests, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=args.idle)
        except queue.Empty:
            return 0  # idle: the model's memory goes back
        if not line:
            return 0  # the window closed or died (stdin ended)
        try:
            path = Path(json.loads(line)["image"])
        except (ValueError, KeyError, TypeError):
            continue
        try:
            t0 = time.perf_counter()
            item = load_image_item(ImagePair(path.stem, path, None))
            if session.cached_embedding(item.image, item.key) is not None:
                say(done=str(path), seconds=0.0)
                continue
            session.embedding(item.image, item.key)
            say(done=str(path), seconds=time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - the image's failure, not the child's
            say(failed=str(path), error=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
