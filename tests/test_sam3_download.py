"""`floodlabel models download sam3` through huggingface_hub against a local HTTP server on 127.0.0.1 (HF_ENDPOINT's
place, no internet): the refusals a gated repository gives (no token, licence not accepted), a missing file, no
server, a file that is not the model, cancel, and a verified download that a second call does not transfer again."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("sam3")
pytest.importorskip("huggingface_hub")

from floodlabel.core.common.errors import DownloadError, ModelError  # noqa: E402
from floodlabel.core.models import registry as reg  # noqa: E402
from floodlabel.core.models.download import download_model, recorded_sha256  # noqa: E402
from tiny_sam3 import tiny_sam3_checkpoint  # noqa: E402

PATH = "/facebook/sam3/resolve/main/sam3.pt"
GATED = "Access to model facebook/sam3 is restricted. You must have access to it and be authenticated to access it."


class HubState:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.mode = "ok"  # ok | gated401 | gated403 | missing
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)


class _Hub(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        st: HubState = self.server.state
        st.requests.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path.split("?")[0] != PATH or st.mode == "missing":
            return self._error(404, "EntryNotFound", "Entry not found")
        if st.mode in ("gated401", "gated403"):
            return self._error(int(st.mode[-3:]), "GatedRepo", GATED)
        body = st.body
        start = 0
        rng = self.headers.get("Range")
        if rng and not head:
            start = int(rng.split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Linked-Etag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Linked-Size", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if not head:
            view = memoryview(body)[start:]
            for i in range(0, len(view), 1 << 20):
                try:
                    self.wfile.write(view[i: i + (1 << 20)])
                except (BrokenPipeError, ConnectionResetError):
                    return

    def _error(self, code: int, error_code: str, message: str) -> None:
        self.send_response(code)
        self.send_header("X-Error-Code", error_code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def sam3_bytes(tmp_path_factory) -> bytes:
    return tiny_sam3_checkpoint(tmp_path_factory.mktemp("s3") / "t.pt", seed=2).read_bytes()


@pytest.fixture
def hub(sam3_bytes, monkeypatch, tmp_path):
    """The local hub, with huggingface_hub pointed at it, no token, and nothing saved in HF_HOME."""
    import huggingface_hub.constants as hc

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    httpd.daemon_threads = True
    httpd.state = HubState(sam3_bytes)
    endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)  # read by hub_download at each call
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(hc, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    httpd.state.endpoint = endpoint
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def custom_size_accepted(monkeypatch):
    """The registry's sam3 entry accepts the reduced test model (the real one is 3.45 GB)."""
    spec = reg.MODELS["sam3"]
    monkeypatch.setitem(reg.MODELS, "sam3", reg.ModelSpec(**{**vars(spec), "architecture": "sam3-custom"}))


def test_gated_without_a_token_says_to_accept_the_licence_and_log_in(hub):
    hub.mode = "gated401"
    with pytest.raises(DownloadError) as info:
        download_model("sam3", progress=False)
    text = str(info.value)
    assert "\n" not in text
    assert "no token was found" in text and "https://huggingface.co/facebook/sam3" in text
    assert "hf auth login" in text and "HF_TOKEN" in text
    assert not reg.local_path("sam3").exists()
    assert all(auth is None for _, _, auth in hub.requests)


def test_licence_not_accepted_with_a_token(hub, monkeypatch):
    hub.mode = "gated403"
    monkeypatch.setenv("HF_TOKEN", "hf_testtoken")
    with pytest.raises(DownloadError, match=r"refused your token \(HTTP 403\): accept Meta's licence at "
                                            r"https://huggingface.co/facebook/sam3"):
        download_model("sam3", progress=False)
    assert hub.requests and all(auth == "Bearer hf_testtoken" for _, _, auth in hub.requests)
    assert not reg.local_path("sam3").exists()


def test_missing_file(hub):
    hub.mode = "missing"
    with pytest.raises(DownloadError, match="facebook/sam3/sam3.pt was not found"):
        download_model("sam3", progress=False)
    assert not reg.local_path("sam3").exists()


@pytest.mark.slow
def test_no_server_is_one_line(hub, monkeypatch):
    """At once: huggingface_hub alone retries a refused connection with back-off for about 25 s; one TCP connection
    first says so."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(DownloadError) as info:
        download_model("sam3", progress=False)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("cannot reach http://127.0.0.1:9 to download sam3")


def test_a_file_of_another_size_is_refused_and_removed(hub):
    with pytest.raises(ModelError, match="is sam3-custom, not sam3; it was removed"):
        download_model("sam3", progress=False)
    assert not reg.local_path("sam3").exists()


def test_download_is_verified_recorded_and_not_repeated(hub, sam3_bytes, custom_size_accepted):
    seen = []
    path = download_model("sam3", progress=False, progress_callback=lambda d, t: seen.append((d, t)))
    assert path == reg.local_path("sam3") and path.read_bytes() == sam3_bytes
    assert seen and seen[-1] == (len(sam3_bytes), len(sam3_bytes))
    assert recorded_sha256("sam3") == hashlib.sha256(sam3_bytes).hexdigest()
    assert reg.checkpoint_family("sam3") == reg.SAM3
    gets = sum(1 for m, _, _ in hub.requests if m == "GET")
    assert download_model("sam3", progress=False) == path
    assert sum(1 for m, _, _ in hub.requests if m == "GET") == gets  # checked against the record, not fetched


def test_cancel_stops_the_transfer(hub, custom_size_accepted):
    cancel = threading.Event()

    def on_progress(done: int, total: int) -> None:
        if done > 0:
            cancel.set()

    with pytest.raises(DownloadError, match="download of sam3 from .* cancelled"):
        download_model("sam3", progress=False, progress_callback=on_progress, cancel_event=cancel)
    assert not reg.local_path("sam3").exists()


def test_cli_refusal_is_one_line_and_a_nonzero_exit(hub):
    hub.mode = "gated401"
    proc = subprocess.run([sys.executable, "-m", "floodlabel", "models", "download", "sam3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warn" not in ln]
    assert "Traceback" not in proc.stderr
    assert any("accept Meta's licence at https://huggingface.co/facebook/sam3" in ln for ln in lines), proc.stderr


def test_models_panel_shows_the_refusal_and_the_measured_speed(qtbot, hub, monkeypatch):
    from floodlabel.core.models import model_speed
    from floodlabel.gui.panels import model_status
    from floodlabel.gui.panels.model_panel import ModelPanel
    from floodlabel.gui.panels.model_status import MachineFacts

    monkeypatch.setattr(model_status, "machine_facts", lambda: MachineFacts(False, reg.recommended_download(False)))
    hub.mode = "gated401"
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.select_model("sam3")
    row = next(r for r in range(panel.table.rowCount())
               if panel.table.item(r, 0) is not None and panel.table.item(r, 0).text() == "sam3")
    seconds, where = model_speed.reference_seconds("sam3")
    assert panel.table.item(row, 2).text().endswith(" / image*") and where in panel.table.item(row, 2).toolTip()
    panel.start_download("sam3")
    qtbot.waitUntil(lambda: panel.task is None, timeout=60_000)
    text = panel.status_label.text()
    assert "Download failed" in text and "no token was found" in text
    assert "https://huggingface.co/facebook/sam3" in text and "hf auth login" in text
