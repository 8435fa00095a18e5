"""Drive the REAL annotation window in a loop, to be SIGKILLed at a random moment (tests/test_window_kill.py).

    python tests/kill_app_driver.py DATA PROJECT CHECKPOINT SEED
        runs the app in this process (offscreen Qt) until it is killed.
    python tests/kill_app_driver.py --serve DATA PROJECT CHECKPOINT
        a fork server: imports Qt, torch and FloodLabel once and prints SERVING; then for every line "SEED REPORT"
        read from stdin one app process runs (its stdout goes to the file REPORT, its stderr to REPORT.err): the
        server prints "PID <pid>", waits for it and prints "EXIT <pid> <wait status>". The app process forked here
        is the same app as the one above (the QApplication, the model, the window and the store are all made
        after the fork); only the imports, about 3 s of every start, are shared. Each app is forked while the one
        before runs and makes its QApplication and model, then waits for its line before it opens the window and
        the project. That lets a test kill 30 apps in about a minute.

The app opens AnnotationWindow on DATA (session = SegmentationSession.open(CHECKPOINT), embedding cache in
PROJECT/../cache, project = PROJECT) and, with a random.Random(SEED), loops: wait for the image, click on water (its
GT mask gives the pixels) and sometimes on land, sometimes paint a brush stroke and linger so that the autosave
fires, press Return (accept: the window moves to the next image not accepted), and after about every other accept
(and sometimes right after READY) run `export_project` on the window's store into PROJECT/../export, so kills also
land in exports. When every image is accepted it keeps going round the images, one more click and Return each.

KILL_DRIVER_DEBUG=1 logs every wait to stderr.

Lines written (unbuffered, each in one write, so a kill never leaves half a line reported as whole):
    READY                           the first image is loaded and encoded (and its restored mask decoded)
    SUBMIT <rel> <sha>              the window hands this mask to its StoreLink (the write may be in flight)
    ACCEPTED <rel> <sha>            the StoreLink emitted `accepted` for it: it is on disk
    SAVED <rel>                     an autosave reached the disk
    EXPORT-START, EXPORT <n>        an export starts, and has finished (n masks)
    FAILED <message>                the StoreLink reported a failed write (the test fails on it)
<sha> is the SHA-256 of np.packbits(mask) of the (H, W) bool mask, at native size.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS thread pool in the fork server (fork + threads)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one torch thread: on a busy machine, spinning OpenMP threads
# make a tiny-SAM decode take a second instead of 50 ms

EXPORT_AFTER_ACCEPT = 0.5
"""Chance of an export after an accept."""
EXPORT_AT_START = 0.3
"""Chance of an export right after READY (when an earlier app accepted something)."""
STEP_TIMEOUT = 20.0


def preload() -> None:
    """Every import the app process needs, so that a forked one starts without them."""
    import numpy  # noqa: F401
    import pycocotools.mask  # noqa: F401
    import torch  # noqa: F401
    from PIL import Image  # noqa: F401
    from PySide6.QtTest import QTest  # noqa: F401
    from PySide6.QtWidgets import QApplication  # noqa: F401

    import floodlabel.core.models.session  # noqa: F401
    import floodlabel.core.export.project_export  # noqa: F401
    import floodlabel.core.sam.backend  # noqa: F401  (segment_anything, torchvision: most of the time)
    import floodlabel.gui.window.annotation_window  # noqa: F401


def mask_sha(mask) -> str:
    import hashlib

    import numpy as np

    return hashlib.sha256(np.packbits(np.asarray(mask, bool))).hexdigest()


def run_app(data: str, project: str, checkpoint: str, seed: int = 0, out_fd: int = 1, go=None) -> None:
    """The app, until killed. go: called once the QApplication and the model are up (a forked app waits there
    for its turn); returns (seed, out_fd)."""
    import random
    import time
    from pathlib import Path

    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QEvent, QPointF, QSettings, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from floodlabel.core.models.session import SegmentationSession
    from floodlabel.core.common.errors import ExportError
    from floodlabel.core.export.project_export import export_project
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    def report(line: str) -> None:
        os.write(out_fd, (line + "\n").encode())

    work = Path(project).parent
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(work / "settings"))
    app = QApplication.instance() or QApplication(["floodlabel-kill-driver"])
    app.setApplicationName("FloodLabel")
    app.setOrganizationName("FloodLabel")
    session = SegmentationSession.open(checkpoint, cache_dir=work / "cache")
    if go is not None:
        seed, out_fd = go()
    rng = random.Random(seed)
    t_start = time.monotonic()
    w = AnnotationWindow(data, session=session, project=project)
    w.resize(1000, 700)
    w.show()
    w.hover_action.setChecked(False)  # no hover decode before each click: more accepts per second
    link = w.store
    assert link is not None and not link.read_only, "the project must open writable (the last driver is dead)"

    # what the window hands to the store, and the `accepted` signal for it
    in_flight: dict[str, list[str]] = {}
    submitted = [0]
    real_accept = link.accept

    def accept(rel, mask, *args, **kwargs):
        sha = mask_sha(mask)
        report(f"SUBMIT {rel} {sha}")  # before the write is queued: a kill after this may or may not store it
        in_flight.setdefault(rel, []).append(sha)
        submitted[0] += 1
        real_accept(rel, mask, *args, **kwargs)

    def on_accepted(rel, record) -> None:
        sha = in_flight[rel].pop(0)  # one worker thread, writes in submission order
        report(f"ACCEPTED {rel} {sha}")

    link.accept = accept
    link.accepted.connect(on_accepted)
    link.saved.connect(lambda rel: report(f"SAVED {rel}"))
    link.failed.connect(lambda message: report(f"FAILED {' '.join(message.split())}"))

    gts = [np.asarray(Image.open(pair.mask)) > 127 for pair in w.dataset.pairs]
    n = len(gts)

    def wait_until(cond, what: str, timeout: float = STEP_TIMEOUT) -> None:
        t0 = time.monotonic()
        end = t0 + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out waiting for {what}")
            QTest.qWait(5)
        if os.environ.get("KILL_DRIVER_DEBUG"):
            now = time.monotonic()
            print(f"{now - t_start:7.3f} waited {now - t0:.3f} s for {what}", file=sys.stderr)

    def image_ready(row: int) -> bool:
        c = w.controller
        return c.row == row and c.item is not None and c.embedding is not None and c.annotation is not None

    def mask_ready() -> bool:
        c = w.controller
        return c.native_mask is not None and not c.decoder.pending and c.native_ready()

    def pixel(mask) -> tuple[float, float]:
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            h, wd = mask.shape
            return rng.uniform(0, wd - 1), rng.uniform(0, h - 1)
        k = rng.randrange(len(xs))
        return float(xs[k]), float(ys[k])

    def click(x, y, button=Qt.MouseButton.LeftButton) -> None:
        QTest.mouseClick(w.canvas.main_viewport, button, Qt.KeyboardModifier.NoModifier, w.canvas.widget_pos(x, y))

    def drag(p0, p1, steps=4) -> None:
        vp = w.canvas.main_viewport
        a, b = w.canvas.widget_pos(*p0), w.canvas.widget_pos(*p1)
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
        for k in range(1, steps + 1):
            pos = QPointF(a + (b - a) * (k / steps))
            ev = QMouseEvent(QEvent.Type.MouseMove, pos, vp.mapToGlobal(pos), Qt.MouseButton.NoButton,
                             Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
            QApplication.sendEvent(vp, ev)
            QTest.qWait(2)
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)

    def export() -> None:
        """As the window's Export does: pending work flushed, queued writes done, then export_project."""
        link.flush()
        wait_until(lambda: not any(in_flight.values()), "the accepts before the export")
        report("EXPORT-START")
        try:
            result = export_project(link.store, work / "export")
        except ExportError as exc:
            report(f"EXPORT-FAILED {' '.join(str(exc).split())}")
            raise
        report(f"EXPORT {result.exported}")

    # a reopened project lands where the last run left off (ProjectStore.resume_image): wait for that image
    wait_until(lambda: w.controller.row is not None and image_ready(w.controller.row), "the first image")
    if not w.controller.annotation.prompt.is_empty:  # restored prompts: their mask is being decoded again
        wait_until(mask_ready, "the restored mask")
    report("READY")
    if "accepted" in {str(s) for s in link.statuses().values()} and rng.random() < EXPORT_AT_START:
        export()  # something is accepted already (an earlier app): export first, so kills land in exports too
    while True:
        row = w.controller.row
        wait_until(lambda: image_ready(row), f"image {row}")
        gt = gts[row]
        clicks_before = w.controller.annotation.click_count
        click(*pixel(gt))
        if rng.random() < 0.3:
            click(*pixel(~gt), Qt.MouseButton.RightButton)
        wait_until(lambda: w.controller.annotation.click_count > clicks_before, "the click")
        wait_until(mask_ready, "the mask")
        if rng.random() < 0.4:  # a brush stroke, then sometimes long enough for the autosave to fire
            strokes = len(w.controller.annotation.strokes)
            w.set_tool("brush" if rng.random() < 0.7 else "erase")
            h, wd = gt.shape
            y = rng.uniform(0.2, 0.8) * h
            drag((rng.uniform(0.05, 0.4) * wd, y), (rng.uniform(0.6, 0.95) * wd, y))
            w.set_tool("prompt")
            wait_until(lambda: len(w.controller.annotation.strokes) > strokes, "the stroke")
            wait_until(mask_ready, "the painted mask")
        if rng.random() < 0.25:
            QTest.qWait(rng.randint(300, 900))  # the autosave fires 700 ms after the last change
        before = submitted[0]
        QTest.keyClick(w, Qt.Key.Key_Return)
        wait_until(lambda: submitted[0] > before, "the accept")
        if w.controller.row == row:  # every image is accepted: go round them, refining
            w.select_image((row + 1) % n)
        if rng.random() < EXPORT_AFTER_ACCEPT:
            export()


def serve(data: str, project: str, checkpoint: str) -> None:
    preload()
    print("SERVING", flush=True)
    waiting = _fork_app(data, project, checkpoint)
    for line in sys.stdin:
        if not line.strip():
            continue
        pid, go = waiting
        os.write(go, line.encode())
        os.close(go)
        print(f"PID {pid}", flush=True)
        waiting = _fork_app(data, project, checkpoint)  # the next one starts up meanwhile, then waits for its line
        _, status = os.waitpid(pid, 0)
        print(f"EXIT {pid} {status}", flush=True)
    pid, go = waiting
    os.close(go)  # end of input: the waiting app reads EOF and exits
    os.waitpid(pid, 0)


def _fork_app(data: str, project: str, checkpoint: str) -> tuple[int, int]:
    """Fork an app process that makes its QApplication and model, then waits for "SEED REPORT" on a pipe before
    it opens the window (and the project). Returns (pid, the pipe's write end)."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(read_end)
        return pid, write_end
    code = 0
    try:
        os.close(write_end)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # the server's stdin and stdout are the test's pipes: not this process's business
        os.dup2(devnull, 1)

        def go() -> tuple[int, int]:
            line = b""
            while not line.endswith(b"\n"):
                chunk = os.read(read_end, 4096)
                if not chunk:
                    os._exit(0)  # the server is done
                line += chunk
            seed, report_path = line.decode().split()
            out = os.open(report_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            err = os.open(report_path + ".err", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(err, 2)
            os.dup2(out, 1)
            return int(seed), out

        run_app(data, project, checkpoint, go=go)
    except BaseException:  # noqa: BLE001 - the traceback goes to REPORT.err (or the server's stderr)
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        code = 1
    os._exit(code)


def main(argv: list[str]) -> None:
    if argv[1:2] == ["--serve"]:
        serve(*argv[2:5])
    else:
        data, project, checkpoint, seed = argv[1:5]
        run_app(data, project, checkpoint, int(seed))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(sys.argv)
