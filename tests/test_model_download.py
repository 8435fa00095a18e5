"""Checkpoint download against a local HTTP server on 127.0.0.1, and the `floodlabel models` CLI. No internet."""

from __future__ import annotations

import errno
import hashlib
import json
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pooch.core
import pytest

import floodlabel.cli
from floodlabel.core.models import registry as reg
from floodlabel.core.common.errors import DownloadError, ModelError
from floodlabel.core.models.download import download_model
from floodlabel.core.common.paths import models_dir
from floodlabel.core.sam.loading import load_sam
from tests.tiny_sam import TINY, tiny_sam_checkpoint

TINY_FILE = "sam_tiny_test.pth"
LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Fail (and record) any name lookup or connection that is not to this machine."""
    blocked: list[object] = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL_HOSTS:
            blocked.append(address)
            raise OSError(errno.ENETUNREACH, "network disabled in tests")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL_HOSTS:
            blocked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "name resolution disabled in tests")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return blocked


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    """pooch sleeps 1 s, 2 s, ... between attempts; record the waits instead."""
    waits: list[float] = []
    monkeypatch.setattr(pooch.core, "time", SimpleNamespace(sleep=waits.append))
    return waits


@pytest.fixture(scope="module")
def tiny_bytes(tmp_path_factory) -> bytes:
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.pth").read_bytes()


@pytest.fixture
def tiny_spec(monkeypatch, tiny_bytes) -> reg.ModelSpec:
    """Register model "tiny": the tiny SAM, official-looking URL (unreachable in tests), custom architecture."""
    spec = reg.ModelSpec("tiny", TINY_FILE, reg.OFFICIAL_BASE_URL + TINY_FILE, hashlib.md5(tiny_bytes).hexdigest(),
                         len(tiny_bytes), "tiny test SAM", "custom")
    monkeypatch.setitem(reg.MODELS, "tiny", spec)
    return spec


@dataclass
class FileServer:
    """State of the local server: files by URL path, a plan of per-request behaviours, and a request log."""

    files: dict[str, bytes] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)  # "ok", "truncate" (full Content-Length, half the body), "500"
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    url: str = ""
    gate: threading.Event | None = None  # when set up, bodies wait until it is set


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server API)
        state: FileServer = self.server.state
        rng = self.headers.get("Range")
        state.requests.append((self.path, rng))
        mode = state.plan.pop(0) if state.plan else "ok"
        data = state.files.get(self.path)
        if data is None or mode == "500":
            return self._status_only(404 if data is None else 500)
        start, status = 0, 200
        if rng and state.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                return self._status_only(416, {"Content-Range": f"bytes */{len(data)}"})
            status = 206
        body = data[start:]
        state.statuses.append(status)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if state.gate is not None:
            state.gate.wait(60)
        try:
            self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)
        except (BrokenPipeError, ConnectionResetError):  # the client cancelled
            pass
        self.close_connection = mode == "truncate"

    def _status_only(self, code, headers=None):
        self.server.state.statuses.append(code)
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tiny_bytes):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = FileServer(files={f"/sam/{TINY_FILE}": tiny_bytes})
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}/sam/"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _leftovers() -> list[str]:
    return sorted(p.name for p in models_dir().iterdir())


# ------------------------------------------------------------------------------------------------ download


def test_download_success_places_verified_loadable_file(server, tiny_spec, tiny_bytes, no_internet):
    calls = []

    def on_progress(done, total):
        assert not reg.local_path("tiny").exists()  # nothing at the final path until the whole file is verified
        calls.append((done, total))

    path = download_model("tiny", base_url=server.url, progress=False, progress_callback=on_progress)
    assert path == reg.local_path("tiny") and reg.is_downloaded("tiny")
    assert _md5(path) == tiny_spec.md5
    assert _leftovers() == [TINY_FILE]  # no temporary or .part files left
    assert load_sam(path).architecture == TINY
    assert reg.resolve_checkpoint("tiny") == path
    assert calls[0] == (0, len(tiny_bytes)) and calls[-1] == (len(tiny_bytes), len(tiny_bytes))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert server.requests == [(f"/sam/{TINY_FILE}", None)]
    assert no_internet == []


def test_already_downloaded_file_is_not_fetched_again(server, tiny_spec):
    first = download_model("tiny", base_url=server.url, progress=False)
    mtime = first.stat().st_mtime_ns
    assert download_model("tiny", base_url=server.url, progress=False) == first
    assert len(server.requests) == 1 and first.stat().st_mtime_ns == mtime


def test_wrong_checksum_leaves_nothing(server, tiny_spec, monkeypatch):
    monkeypatch.setitem(reg.MODELS, "tiny", reg.ModelSpec(**{**tiny_spec.__dict__, "md5": "0" * 32}))
    with pytest.raises(DownloadError) as err:
        download_model("tiny", base_url=server.url, progress=False, retries=0)
    msg = str(err.value)
    assert "checksum mismatch" in msg and server.url + TINY_FILE in msg and tiny_spec.md5 in msg
    assert "\n" not in msg
    assert _leftovers() == []  # the completed .part went into pooch's temp file, which was deleted


def test_checksum_failure_is_retried_from_scratch(server, tiny_spec, tiny_bytes, no_retry_wait):
    """A corrupt .part resumes to a full-length file, fails the MD5, and the retry downloads it all again."""
    part = models_dir() / (TINY_FILE + ".part")
    part.write_bytes(b"\0" * 1000)
    path = download_model("tiny", base_url=server.url, progress=False, retries=1)
    assert _md5(path) == tiny_spec.md5
    assert [r for _, r in server.requests] == ["bytes=1000-", None]
    assert no_retry_wait == [1]


def test_interrupted_transfer_leaves_no_final_file_then_resumes(server, tiny_spec, tiny_bytes):
    server.plan = ["truncate"]
    with pytest.raises(DownloadError, match="interrupted") as err:
        download_model("tiny", base_url=server.url, progress=False, retries=0)
    assert server.url + TINY_FILE in str(err.value)
    assert not reg.local_path("tiny").exists() and not reg.is_downloaded("tiny")
    part = models_dir() / (TINY_FILE + ".part")
    kept = part.stat().st_size  # whole chunks received before the connection dropped
    assert _leftovers() == [part.name] and 0 < kept <= len(tiny_bytes) // 2
    with pytest.raises(ModelError, match="not downloaded"):
        reg.resolve_checkpoint("tiny")
    # the next call asks only for the rest
    path = download_model("tiny", base_url=server.url, progress=False, retries=0)
    assert _md5(path) == tiny_spec.md5
    assert server.requests[-1][1] == f"bytes={kept}-" and server.statuses[-1] == 206
    assert _leftovers() == [TINY_FILE]


def test_retry_resumes_within_one_call(server, tiny_spec, tiny_bytes, no_retry_wait):
    server.plan = ["truncate", "ok"]
    path = download_model("tiny", base_url=server.url, progress=False, retries=2)
    assert _md5(path) == tiny_spec.md5
    assert server.requests[0][1] is None
    assert 0 < int(re.fullmatch(r"bytes=(\d+)-", server.requests[1][1]).group(1)) <= len(tiny_bytes) // 2
    assert server.statuses == [200, 206] and no_retry_wait == [1]


def test_server_ignoring_range_gets_full_download(server, tiny_spec):
    server.plan, server.honour_range = ["truncate", "ok"], False
    path = download_model("tiny", base_url=server.url, progress=False, retries=1)
    assert _md5(path) == tiny_spec.md5
    assert server.requests[1][1] is not None and server.statuses == [200, 200]


def test_oversized_part_restarts(server, tiny_spec, tiny_bytes):
    (models_dir() / (TINY_FILE + ".part")).write_bytes(tiny_bytes + b"junk")
    path = download_model("tiny", base_url=server.url, progress=False, retries=0)
    assert _md5(path) == tiny_spec.md5 and server.statuses == [416, 200]


def test_server_error_is_retried(server, tiny_spec, no_retry_wait):
    server.plan = ["500", "ok"]
    path = download_model("tiny", base_url=server.url, progress=False, retries=1)
    assert _md5(path) == tiny_spec.md5 and server.statuses == [500, 200]


def test_http_404_fails_fast_with_one_line(server, tiny_spec, no_retry_wait):
    url = server.url.replace("/sam/", "/nowhere/")
    with pytest.raises(DownloadError) as err:
        download_model("tiny", base_url=url, progress=False, retries=3)
    assert str(err.value) == f"cannot download {url}{TINY_FILE}: HTTP 404 Not Found"
    assert len(server.requests) == 1 and no_retry_wait == []  # a 404 is not retried
    assert _leftovers() == []


def test_connection_refused_is_one_line(tiny_spec):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        download_model("tiny", base_url=f"http://127.0.0.1:{port}/", progress=False, retries=0)
    assert str(err.value) == f"cannot download http://127.0.0.1:{port}/{TINY_FILE}: Connection refused"


def test_base_url_env_override(server, tiny_spec, monkeypatch):
    monkeypatch.setenv(reg.BASE_URL_ENV, server.url.rstrip("/"))
    path = download_model("tiny", progress=False)
    assert _md5(path) == tiny_spec.md5 and server.requests[0][0] == f"/sam/{TINY_FILE}"


def test_official_url_by_default_and_guard_blocks_internet(tiny_spec, no_internet, monkeypatch):
    monkeypatch.delenv(reg.BASE_URL_ENV, raising=False)
    with pytest.raises(DownloadError) as err:
        download_model("vit_b", progress=False, retries=0)
    assert str(err.value).startswith(f"cannot download {reg.MODELS['vit_b'].url}: ")
    assert "\n" not in str(err.value)
    assert no_internet == ["dl.fbaipublicfiles.com"]
    assert _leftovers() == []


def test_cancel_leaves_no_final_file_and_can_resume(server, tiny_spec, tiny_bytes):
    cancel = threading.Event()

    def on_progress(done, total):
        if done > 0:
            cancel.set()

    with pytest.raises(DownloadError, match="cancelled"):
        download_model("tiny", base_url=server.url, progress=False, progress_callback=on_progress,
                       cancel_event=cancel, retries=3)
    assert len(server.requests) == 1  # cancelling is not retried
    assert not reg.local_path("tiny").exists()
    part = models_dir() / (TINY_FILE + ".part")
    assert _leftovers() == [part.name] and 0 < part.stat().st_size < len(tiny_bytes)
    kept = part.stat().st_size
    path = download_model("tiny", base_url=server.url, progress=False)
    assert _md5(path) == tiny_spec.md5 and server.requests[-1][1] == f"bytes={kept}-"


def test_cancel_before_start_sends_no_request(server, tiny_spec):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadError, match="cancelled"):
        download_model("tiny", base_url=server.url, progress=False, cancel_event=cancel)
    assert server.requests == [] and _leftovers() == []


def test_wrong_architecture_is_removed(server, tiny_spec, monkeypatch):
    """A tiny (custom) SAM served as vit_b with a matching checksum is still rejected by its tensor shapes."""
    server.files["/sam/" + reg.MODELS["vit_b"].filename] = server.files[f"/sam/{TINY_FILE}"]
    monkeypatch.setitem(reg.MODELS, "vit_b", reg.ModelSpec(**{**reg.MODELS["vit_b"].__dict__, "md5": tiny_spec.md5}))
    with pytest.raises(ModelError, match="is a SAM custom, not vit_b"):
        download_model("vit_b", base_url=server.url, progress=False)
    assert _leftovers() == [] and not reg.is_downloaded("vit_b")


def test_non_checkpoint_download_is_removed(server, tiny_spec, monkeypatch):
    junk = b"<html>not a checkpoint</html>"
    server.files[f"/sam/{TINY_FILE}"] = junk
    monkeypatch.setitem(reg.MODELS, "tiny", reg.ModelSpec(**{**tiny_spec.__dict__,
                                                             "md5": hashlib.md5(junk).hexdigest()}))
    with pytest.raises(ModelError, match="unusable and was removed"):
        download_model("tiny", base_url=server.url, progress=False)
    assert _leftovers() == []


def test_unknown_name_raises_model_error(server):
    with pytest.raises(ModelError, match="unknown model"):
        download_model("vit_z", base_url=server.url, progress=False)
    assert server.requests == []


def test_retries_are_one_plain_message_not_pooch_log_lines(server, tiny_spec, no_retry_wait, capsys):
    server.plan = ["500", "ok"]
    messages = []
    path = download_model("tiny", base_url=server.url, progress=False, retries=2, message_callback=messages.append)
    assert _md5(path) == tiny_spec.md5
    assert messages == ["download of tiny failed; retrying (2 attempts left)"]
    out, err = capsys.readouterr()
    assert "Downloading" not in err and "Failed to download" not in err and "Will attempt" not in err


_CHILD = textwrap.dedent("""
    import sys
    from floodlabel.core.models import registry as reg
    from floodlabel.core.models.download import download_model
    url, md5, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reg.MODELS["tiny"] = reg.ModelSpec("tiny", "{file}", reg.OFFICIAL_BASE_URL + "{file}", md5, size, "tiny", "custom")
    path = download_model("tiny", base_url=url, progress=False, retries=0,
                          message_callback=lambda m: print("MESSAGE", m, file=sys.stderr, flush=True))
    print(path)
""").format(file=TINY_FILE)


def test_two_processes_one_download(server, tiny_spec, tiny_bytes, tmp_path):
    """Two processes download the same model: exactly one transfer; the second says so, waits, gets the file."""
    server.gate = threading.Event()
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    args = [sys.executable, str(script), server.url, tiny_spec.md5, str(len(tiny_bytes))]
    logs = [tmp_path / "a.err", tmp_path / "b.err"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=logs[0].open("w"), text=True)
    try:
        _wait_for(lambda: server.requests, "the first download's request")
        second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=logs[1].open("w"), text=True)
        _wait_for(lambda: "MESSAGE" in logs[1].read_text(), "the second process's message")
        server.gate.set()
        outs = [p.communicate(timeout=120) for p in (first, second)]
    finally:
        server.gate.set()
        for p in (first, locals().get("second")):
            if p is not None and p.poll() is None:
                p.kill()
    assert [p.returncode for p in (first, second)] == [0, 0], [log.read_text() for log in logs]
    assert [o.strip() for o, _ in outs] == [str(reg.local_path("tiny"))] * 2
    assert len(server.requests) == 1  # exactly one transfer
    assert _md5(reg.local_path("tiny")) == tiny_spec.md5 and _leftovers() == [TINY_FILE]
    message = logs[1].read_text().strip()
    assert message.startswith("MESSAGE another download of tiny is running") and "waiting for it" in message
    assert "MESSAGE" not in logs[0].read_text()


def test_cancel_while_waiting_for_another_download(tiny_spec, server):
    import filelock

    from floodlabel.core.common.paths import cache_dir

    (cache_dir() / "locks").mkdir(exist_ok=True)
    held = filelock.FileLock(cache_dir() / "locks" / f"{TINY_FILE}.lock")
    held.acquire()
    try:
        cancel = threading.Event()
        messages = []

        def on_message(line):
            messages.append(line)
            cancel.set()

        with pytest.raises(DownloadError, match="cancelled"):
            download_model("tiny", base_url=server.url, progress=False, cancel_event=cancel,
                           message_callback=on_message)
    finally:
        held.release()
    assert len(messages) == 1 and server.requests == []


def _wait_for(condition, what, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `floodlabel ...` in-process (only the models command is registered); returns (code, out, err)."""
    monkeypatch.setattr(floodlabel.cli, "COMMAND_MODULES", ("models",))

    def run(*argv):
        code = floodlabel.cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_list_table_and_json(cli):
    code, out, err = cli("models", "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "SIZE", "DOWNLOADED", "PATH"]
    assert lines[1].split() == ["classic", "classic", "-", "built-in", "-"]
    assert lines[2].split()[:5] == ["vit_b", "sam", "375", "MB", "no"]
    assert lines[4].split()[:5] == ["vit_h", "sam", "2.56", "GB", "no"] and lines[4].endswith("sam_vit_h_4b8939.pth")
    assert lines[5].split()[:5] == ["sam2.1_hiera_tiny", "sam2.1", "156", "MB", "no"]  # SAM 2.1: test_sam2_download
    code, out, _ = cli("models", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows][:4] == ["classic", "vit_b", "vit_l", "vit_h"]
    assert [r["family"] for r in rows] == ["classic"] + ["sam"] * 3 + ["sam2.1"] * 4 + ["sam3"]
    assert rows[0]["downloaded"] is True and rows[0]["path"] is None
    assert rows[1]["downloaded"] is False and rows[1]["path"] == str(reg.local_path("vit_b"))
    assert cli("models") == cli("models", "list")  # bare `models` lists


def test_cli_download_path_and_list(cli, server, tiny_spec):
    code, out, _ = cli("models", "path", "tiny")
    assert code == 2 and out == ""
    code, out, err = cli("models", "download", "tiny", "--base-url", server.url)
    assert code == 0 and out == f"{reg.local_path('tiny')}\n"
    assert TINY_FILE in err and "100%" in err  # tqdm bar on stderr
    code, out, err = cli("models", "path", "tiny")
    assert (code, out, err) == (0, f"{reg.local_path('tiny')}\n", "")
    rows = {r["name"]: r for r in json.loads(cli("models", "list", "--json")[1])}
    assert rows["tiny"]["downloaded"] is True and rows["tiny"]["size_bytes"] == len(server.files[f"/sam/{TINY_FILE}"])


def test_cli_path_not_downloaded_is_one_line_exit_2(cli):
    code, out, err = cli("models", "path", "vit_b")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("floodlabel: error: vit_b is not downloaded")
    code, _, err = cli("models", "path", "bogus")
    assert code == 2 and "unknown model 'bogus'" in err and err.count("\n") == 1


def test_cli_path_accepts_a_file(cli, tmp_path, tiny_bytes):
    f = tmp_path / "sam_vit_h_4b8939.pth"
    f.write_bytes(tiny_bytes)
    assert cli("models", "path", str(f)) == (0, f"{f}\n", "")


def test_cli_download_errors_exit_2(cli, server, tiny_spec):
    code, out, err = cli("models", "download", "tiny", "--base-url", server.url + "missing/")
    assert code == 2 and out == "" and err.strip().endswith("HTTP 404 Not Found") and err.count("\n") == 1
    code, out, err = cli("models", "download", "nope")
    assert code == 2 and "unknown model 'nope'" in err
    code, out, err = cli("models", "download", "classic")
    assert code == 0 and out == "" and "built in" in err
