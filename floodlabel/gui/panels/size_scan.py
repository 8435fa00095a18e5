"""The image list's header scan: image and mask sizes read from file headers in the background, in chunks, reported
through a relay QObject like gui/workers/background.py, so the list never blocks.

A folder of PROCESS_MIN_ROWS images or more is scanned by a child process (`core.data.header_scan`): a scanning
thread held the GIL and each Python call of the list's paint waited for it (UI stalls up to 1.3 s on 10,000
images). The thread here then only waits on the pipe. Smaller folders, or when the child cannot run, are scanned
in the thread itself (FLOODLABEL_HEADER_SCAN=thread forces that, for comparison).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

from PySide6.QtCore import QObject, Signal

from floodlabel.core.data import header_scan
from floodlabel.core.data.datasets import FloodDataset
from floodlabel.gui.workers.daemon_thread import DaemonThread

log = logging.getLogger(__name__)

SIZE_CHUNK = 64
"""Rows whose headers are read before one result is sent to the UI thread."""
GIL_HANDOVER_S = 0.002
"""The in-thread scan hands the GIL over at least this often (Python's own switch interval is 5 ms)."""
PROCESS_MIN_ROWS = 1000
"""Folders with at least this many images are scanned in a child process."""


class SizeRelay(QObject):
    sizes = Signal(int, object)  # generation, [(row, image size, mask size, error)]
    done = Signal(int)


class SizeScanner:
    """Reads the image and mask header of every pair in the background, SIZE_CHUNK rows per `sizes` signal.

    The sizes are cached on the dataset (`FloodDataset.remember_size`, or its own `image_size`) for later use.
    `stop()` ends it after the current file (and ends the child process). The relay is parentless and kept alive
    by the thread (see gui/background.py).
    """

    def __init__(self, dataset: FloodDataset, generation: int) -> None:
        self._dataset = dataset
        self._generation = generation
        self._stop = threading.Event()
        self._child: subprocess.Popen | None = None
        self.relay = SizeRelay()
        self._thread = DaemonThread(self._run, "floodlabel-image-sizes")

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    @property
    def in_process(self) -> bool:
        """Whether this scan runs (or will run) in a child process: PROCESS_MIN_ROWS or more rows whose sizes the
        dataset does not know yet, and FLOODLABEL_HEADER_SCAN is not "thread"."""
        return _wants_process(self._unknown_rows())

    def _unknown_rows(self) -> list[int]:
        known = self._dataset.size_known
        return [row for row, p in enumerate(self._dataset.pairs)
                if not known(p.image) or (p.mask is not None and not known(p.mask))]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def _run(self) -> None:
        reported: set[int] = set()
        unknown = self._unknown_rows()
        if _wants_process(unknown):
            try:
                reported = self._run_child(unknown)
            except (OSError, ValueError) as exc:  # no child (a frozen app, no fork): the thread does it all
                log.warning("header scan in a child process failed (%s); scanning in a thread", exc)
        if not self._stop.is_set():
            self._run_here([row for row in range(len(self._dataset.pairs)) if row not in reported])
        if not self._stop.is_set():
            self.relay.done.emit(self._generation)

    def _run_child(self, rows: list[int]) -> set[int]:
        """Scan `rows` in `python -m floodlabel.core.data.header_scan`; returns the rows it reported (the rest are
        scanned here when it ends early)."""
        pairs = self._dataset.pairs
        child = subprocess.Popen([sys.executable, "-m", "floodlabel.core.data.header_scan"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._child = child
        if self._stop.is_set():  # stopped before the child was known: stop() could not end it
            child.kill()
        reported: set[int] = set()
        try:
            payload = json.dumps([[row, str(pairs[row].image), None if pairs[row].mask is None else
                                   str(pairs[row].mask)] for row in rows])
            try:
                child.stdin.write(payload)
                child.stdin.close()
            except (BrokenPipeError, OSError):
                pass  # it died at once: its exit is handled below
            remember = self._dataset.remember_size
            for line in child.stdout:  # blocks in the pipe read, without the GIL
                if self._stop.is_set():
                    break
                chunk = header_scan.parse_chunk(line)
                for row, image_size, mask_size, _ in chunk:
                    pair = pairs[row]
                    if image_size is not None:
                        remember(pair.image, image_size)
                    if mask_size is not None and pair.mask is not None:
                        remember(pair.mask, mask_size)
                    reported.add(row)
                self.relay.sizes.emit(self._generation, chunk)
        finally:
            if child.poll() is None and self._stop.is_set():
                child.kill()
            child.stdout.close()
            child.wait()
            self._child = None
        if child.returncode != 0 and not self._stop.is_set():
            log.warning("header scan child exited with %s after %d of %d rows", child.returncode, len(reported),
                        len(rows))
        return reported

    def _run_here(self, rows: list[int]) -> None:
        relay, chunk = self.relay, []
        handover = time.perf_counter() + GIL_HANDOVER_S
        size_of, pairs = self._dataset.image_size, self._dataset.pairs
        for row in rows:
            if self._stop.is_set():
                return
            pair = pairs[row]
            chunk.append(header_scan.header_row(row, pair.image, pair.mask, size_of))
            if time.perf_counter() >= handover:  # let a waiting UI thread take the GIL now, not after 5 ms:
                time.sleep(0)  # each of Qt's calls into Python while painting would wait that long
                handover = time.perf_counter() + GIL_HANDOVER_S
            if len(chunk) >= SIZE_CHUNK:
                relay.sizes.emit(self._generation, chunk)
                chunk = []
        if chunk and not self._stop.is_set():
            relay.sizes.emit(self._generation, chunk)


def _wants_process(unknown_rows: list[int]) -> bool:
    return len(unknown_rows) >= PROCESS_MIN_ROWS and os.environ.get("FLOODLABEL_HEADER_SCAN", "process") != "thread"
