"""The Models panel on its own (offscreen Qt): model status and download; the `gui` command's set-up.

`floodlabel gui` through cli.main is not run here (it would block in the event loop); the window factory is.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pooch.core
import pytest
from PySide6.QtCore import Qt, QTimer

import floodlabel.core.models.download as model_download
import floodlabel.gui.app as gui_app
from floodlabel.commands import gui_command
from floodlabel.core.models import registry as reg
from floodlabel.core.common.errors import DownloadError
from floodlabel.core.common.paths import models_dir
from floodlabel.gui import qt_platform
from floodlabel.gui.panels.model_panel import HERE, SIZE, ModelPanel
from floodlabel.gui.workers.background import one_line_error

VIT_B = reg.MODELS["vit_b"]
TINY2 = reg.MODELS["sam2.1_hiera_tiny"]


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch):
    """No GPU (as on the development VM, also where there is one): the panel recommends sam2.1_hiera_tiny."""
    monkeypatch.setenv("FLOODLABEL_DEVICE", "cpu")


@pytest.fixture
def panel_for(qtbot):
    """make(model=None): a shown bare ModelPanel for the `--model` value `model`."""
    def make(model: str | None = None) -> ModelPanel:
        panel = ModelPanel(model)
        qtbot.addWidget(panel)
        panel.show()
        qtbot.waitExposed(panel)
        qtbot.waitUntil(lambda: panel.facts_call is not None and not panel.facts_call.is_running(),
                        timeout=30_000)  # GPU and speeds measured
        qtbot.wait(50)  # their queued signal
        return panel

    return make


def _table(panel: ModelPanel) -> dict[str, tuple[str, str]]:
    t = panel.table
    return {t.item(i, 0).text(): (t.item(i, SIZE).text(), t.item(i, HERE).text()) for i in range(t.rowCount())
            if t.item(i, SIZE) is not None}  # not the family rows


# ------------------------------------------------------------------------------------------------ model panel


def test_panel_starts_with_classic_fallback_and_says_how_to_get_sam(panel_for):
    panel = panel_for()
    assert "classic (offline, no weights)" in panel.backend_label.text()
    no = "not downloaded"
    assert _table(panel) == {"vit_b": ("375 MB", no), "vit_l": ("1.25 GB", no), "vit_h": ("2.56 GB", no),
                             "sam2.1_hiera_tiny": ("156 MB", no), "sam2.1_hiera_small": ("184 MB", no),
                             "sam2.1_hiera_base_plus": ("324 MB", no), "sam2.1_hiera_large": ("898 MB", no),
                             "sam3": ("3.45 GB", "about 31 s / image*")}  # * measured on the dev VM, not here
    t = panel.table
    assert [t.item(i, 0).text() for i in range(t.rowCount()) if t.item(i, SIZE) is None] == ["SAM", "SAM 2.1", "SAM 3"]
    howto = panel.howto_label.text()
    for needed in ("floodlabel models download sam2.1_hiera_tiny", TINY2.url, reg.BASE_URL_ENV, "--model",
                   str(models_dir())):
        assert needed in howto
    assert panel.download_button.isEnabled() and panel.download_button.text() == "Download sam2.1_hiera_tiny (156 MB)"
    assert "Recommended here: <b>sam2.1_hiera_tiny</b>" in panel.recommend_label.text()
    assert not panel.cancel_button.isEnabled() and not panel.progress_bar.isVisible()
    assert not panel.warning_label.isVisible()


def test_fake_downloaded_checkpoint_is_listed_and_used(panel_for):
    (models_dir() / VIT_B.filename).write_bytes(b"x" * 1234)
    panel = panel_for()
    assert _table(panel)["vit_b"] == ("1 kB", "downloaded") and _table(panel)["vit_l"][1] == "not downloaded"
    assert "SAM vit_b" in panel.backend_label.text()
    assert panel.download_button.isEnabled()  # the recommended sam2.1_hiera_tiny is not downloaded
    panel.select_model("vit_b")
    assert not panel.download_button.isEnabled()
    assert panel.download_button.text() == "vit_b downloaded"


def test_requested_model_that_is_missing_falls_back_with_a_warning(panel_for, tmp_path):
    panel = panel_for(model=str(tmp_path / "nope.pth"))
    assert "classic" in panel.backend_label.text()
    assert panel.warning_label.isVisible()
    assert "checkpoint not found" in panel.warning_label.text()


def test_requested_checkpoint_file_is_used(panel_for, tmp_path):
    ckpt = tmp_path / "my_sam.pth"
    ckpt.write_bytes(b"weights")
    panel = panel_for(model=str(ckpt))
    assert f"SAM checkpoint {ckpt}" in panel.backend_label.text()


def test_mirror_from_the_environment_is_named(panel_for, monkeypatch):
    monkeypatch.setenv(reg.BASE_URL_ENV, "http://mirror.example/sam")
    panel = panel_for()
    assert "http://mirror.example/sam/" in panel.howto_label.text()


# ------------------------------------------------------------------------------------------------ download


def test_download_reports_progress_and_refreshes_the_panel(panel_for, qtbot, monkeypatch):
    def fake_download(name, progress_callback=None, cancel_event=None, **_):
        assert threading.current_thread() is not threading.main_thread()
        for done in range(0, 101, 10):
            progress_callback(done * 1000, 100_000)
        path = reg.local_path(name)
        path.write_bytes(b"sam")
        return path

    monkeypatch.setattr(model_download, "download_model", fake_download)
    panel = panel_for()
    with qtbot.waitSignal(panel.backend_changed, timeout=30_000) as changed:
        qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    assert changed.args[0].model == "sam2.1_hiera_tiny"  # the recommended model, the button's target
    assert "Downloaded and verified" in panel.status_label.text()
    assert _table(panel)["sam2.1_hiera_tiny"][1] == "downloaded"
    assert "sam2.1_hiera_tiny" in panel.backend_label.text()
    assert not panel.download_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_download_can_be_cancelled_while_the_ui_stays_responsive(panel_for, qtbot, monkeypatch):
    halfway = threading.Event()

    def fake_download(name, progress_callback=None, cancel_event=None, **_):
        progress_callback(50_000, 100_000)
        halfway.set()
        if not cancel_event.wait(20):  # a long transfer, until cancelled
            raise AssertionError("never cancelled")
        raise DownloadError(f"download of {name} from {reg.download_url(name)} cancelled")

    monkeypatch.setattr(model_download, "download_model", fake_download)
    panel = panel_for()
    panel.start_download()
    assert not panel.download_button.isEnabled() and panel.cancel_button.isEnabled()
    # the UI thread keeps running its event loop while the worker is busy: timers fire, progress arrives
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    qtbot.waitUntil(lambda: panel.progress_bar.value() == 500 and len(ticks) >= 5, timeout=10_000)
    assert halfway.is_set() and panel.task.is_running()
    assert "50 kB of 100 kB" in panel.progress_bar.text()
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.task is None, timeout=10_000)
    timer.stop()
    assert "cancelled" in panel.status_label.text() and "resume" in panel.status_label.text()
    assert panel.download_button.isEnabled() and not panel.progress_bar.isVisible()
    assert not reg.local_path("sam2.1_hiera_tiny").exists()


def test_download_error_is_one_line_in_the_panel(panel_for, qtbot, monkeypatch):
    message = "cannot download https://dl.fbaipublicfiles.com/x.pth: host name could not be resolved"

    def fake_download(name, **_):
        raise DownloadError(message)

    monkeypatch.setattr(model_download, "download_model", fake_download)
    panel = panel_for()
    panel.start_download()
    qtbot.waitUntil(lambda: panel.task is None, timeout=10_000)  # finished, one way or another
    assert panel.status_label.text() == (f"Download failed: {message}. "
                                         "The app keeps working with the classic backend meanwhile.")
    assert "Traceback" not in panel.status_label.text()
    assert panel.download_button.isEnabled() and "classic" in panel.backend_label.text()


def test_real_download_code_against_a_local_server_shows_the_checksum_error(panel_for, qtbot, monkeypatch):
    """The real `download_model` (pooch, progress, MD5) against 127.0.0.1: wrong bytes -> readable error, no file."""
    body = b"not a checkpoint " * 60_000  # about 1 MB: several 256 KiB chunks of progress
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(body))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv(reg.BASE_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/sam/")
    monkeypatch.setattr(pooch.core, "time", SimpleNamespace(sleep=lambda s: None))  # no waits between retries
    real_download, seen = model_download.download_model, []

    def spy(name, progress_callback=None, **kwargs):
        def record(done, total):
            seen.append((done, total))
            progress_callback(done, total)

        return real_download(name, progress_callback=record, **kwargs)

    monkeypatch.setattr(model_download, "download_model", spy)
    try:
        panel = panel_for()
        panel.start_download("vit_b")
        qtbot.waitUntil(lambda: panel.task is None, timeout=30_000)
    finally:
        httpd.shutdown()
        httpd.server_close()
    message = panel.status_label.text().removeprefix("Download failed: ").split(". The app")[0]
    assert "checksum mismatch" in message and VIT_B.md5 in message and "\n" not in message
    assert seen and seen[-1] == (len(body), len(body))
    assert "Download failed: cannot download http://127.0.0.1" in panel.status_label.text()
    assert not reg.local_path("vit_b").exists()


def test_one_line_error():
    assert one_line_error(DownloadError("a\nb")) == "a"
    assert one_line_error(ValueError("bad value")) == "ValueError: bad value"
    assert one_line_error(KeyError()) == "KeyError"


# ------------------------------------------------------------------------------------------------ gui command


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    gui_command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_gui_command_arguments():
    args = _parse(["gui", "/data/flood", "--model", "vit_l"])
    assert (args.data, args.model, args.func) == ("/data/flood", "vit_l", gui_command.run)
    assert (_parse(["gui"]).data, _parse(["gui"]).model) == (None, None)


def test_gui_command_without_a_display_exits_2_with_one_line(monkeypatch, capsys):
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(qt_platform.sys, "platform", "linux")
    assert gui_command.run(_parse(["gui"])) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("floodlabel: cannot open a window")
    assert "no display" in err and "xvfb-run" in err


def test_gui_command_shows_the_window_and_returns_the_event_loop_status(qtbot, monkeypatch, tmp_path):
    """run() wiring, with the event loop stubbed: a real QApplication.exec() here would leave pytest-qt's
    application quitting, after which queued cross-thread signals are no longer delivered to later tests."""
    windows = []

    def factory(data=None, model=None, project=None):
        w = _annotation_window(data, model)
        qtbot.addWidget(w)
        windows.append(w)
        return w

    class App:
        def exec(self):
            return 0 if windows and windows[0].isVisible() else 1

    monkeypatch.setattr(gui_app, "create_annotation_window", factory)
    monkeypatch.setattr(gui_app, "create_app", lambda argv=None: App())
    assert gui_command.run(_parse(["gui", str(tmp_path), "--model", "classic"])) == 0
    assert "as asked by --model" in windows[0].model_panel.backend_label.text()
    assert windows[0].message_label.isVisible() and "Cannot open" in windows[0].message_label.text()  # no images
    windows[0].close()


def _annotation_window(data, model):
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    return AnnotationWindow(data, model)


def test_platform_problem_cases(monkeypatch):
    monkeypatch.setattr(qt_platform.sys, "platform", "linux")
    assert qt_platform.platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert qt_platform.platform_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None
    assert "neither DISPLAY nor WAYLAND_DISPLAY" in qt_platform.platform_problem({})
    assert "WAYLAND_DISPLAY is not set" in qt_platform.platform_problem({"QT_QPA_PLATFORM": "wayland"})
    monkeypatch.setattr(qt_platform, "missing_xcb_library", lambda: "libxcb-icccm.so.4")
    msg = qt_platform.platform_problem({"DISPLAY": ":0"})
    assert "needs libxcb-icccm.so.4 (package libxcb-icccm4)" in msg
    monkeypatch.setattr(qt_platform, "missing_xcb_library", lambda: None)
    monkeypatch.setattr(qt_platform, "x_display_reachable", lambda d: False)
    assert "X display :0 cannot be reached" in qt_platform.platform_problem({"DISPLAY": ":0"})
    monkeypatch.setattr(qt_platform, "x_display_reachable", lambda d: True)
    assert qt_platform.platform_problem({"DISPLAY": ":0"}) is None


# ----------------------------------------------------------------------------------------------------- helpers


def _handler(body: bytes):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    assert hashlib.md5(body).hexdigest() != VIT_B.md5
    return Handler
