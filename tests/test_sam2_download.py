"""SAM 2.1 downloads against a local HTTP server on 127.0.0.1 (no internet): Meta publishes no checksum for these
files, so a download is verified by loading it (weights_only, strict shapes) and its SHA-256 is recorded at the first
download and checked on every later fetch. Resume, lock, retry and cancel are the SAM v1 code path
(test_model_download); here: what differs."""

from __future__ import annotations

import hashlib
import threading
from http.server import ThreadingHTTPServer

import pytest
from tiny_sam import tiny_sam_checkpoint
from tiny_sam2 import tiny_sam2_checkpoint

from floodlabel.core.common.errors import DownloadError, ModelError
from floodlabel.core.models import registry as reg
from floodlabel.core.models.download import download_model, recorded_sha256, recorded_sha256_path
from floodlabel.core.sam2.loading import load_sam2
from tests.test_model_download import FileServer, _Handler, no_internet, no_retry_wait  # noqa: F401 (fixtures)

NAME = "sam2.1_hiera_tiny"
FILE = reg.MODELS[NAME].filename


@pytest.fixture(scope="module")
def sam2_bytes(tmp_path_factory) -> bytes:
    return tiny_sam2_checkpoint(tmp_path_factory.mktemp("s2") / "t.pt", seed=4).read_bytes()


@pytest.fixture(scope="module")
def other_sam2_bytes(tmp_path_factory) -> bytes:
    return tiny_sam2_checkpoint(tmp_path_factory.mktemp("s2b") / "t.pt", seed=5).read_bytes()


@pytest.fixture
def server(sam2_bytes):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = FileServer(files={f"/sam/{FILE}": sam2_bytes})
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}/sam/"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def test_first_download_is_loaded_and_its_sha256_recorded(server, sam2_bytes):
    seen = []
    path = download_model(NAME, base_url=server.url, progress=False, progress_callback=lambda d, t: seen.append(t))
    assert path == reg.local_path(NAME) and path.read_bytes() == sam2_bytes
    assert seen[-1] == len(sam2_bytes)
    digest = hashlib.sha256(sam2_bytes).hexdigest()
    assert recorded_sha256(NAME) == digest
    assert recorded_sha256_path(path).read_text() == f"{digest}  {FILE}\n"
    assert load_sam2(path).architecture.name == NAME
    # a later fetch checks the file against the record and transfers nothing
    requests = len(server.requests)
    assert download_model(NAME, base_url=server.url, progress=False) == path
    assert len(server.requests) == requests


def test_a_damaged_file_is_fetched_again_and_checked_against_the_record(server, sam2_bytes):
    path = download_model(NAME, base_url=server.url, progress=False)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert download_model(NAME, base_url=server.url, progress=False).read_bytes() == sam2_bytes
    assert recorded_sha256(NAME) == hashlib.sha256(sam2_bytes).hexdigest()


def test_a_server_file_that_differs_from_the_record_is_refused(server, other_sam2_bytes):
    path = download_model(NAME, base_url=server.url, progress=False)
    recorded = recorded_sha256(NAME)
    path.write_bytes(b"damaged")
    server.files[f"/sam/{FILE}"] = other_sam2_bytes  # valid SAM 2.1 tiny, but not the file first downloaded
    with pytest.raises(DownloadError, match="checksum mismatch, expected sha256") as err:
        download_model(NAME, base_url=server.url, progress=False, retries=0)
    assert recorded in str(err.value) and str(recorded_sha256_path(path)) in str(err.value)
    assert recorded_sha256(NAME) == recorded  # the record stands


def test_the_wrong_family_or_size_is_removed_and_nothing_recorded(server, sam2_bytes, tmp_path):
    server.files[f"/sam/{FILE}"] = tiny_sam_checkpoint(tmp_path / "v1.pth").read_bytes()
    with pytest.raises(ModelError, match=f"is a SAM custom, not {NAME}; it was removed"):
        download_model(NAME, base_url=server.url, progress=False)
    assert not reg.local_path(NAME).exists() and recorded_sha256(NAME) is None
    small = "sam2.1_hiera_small"
    server.files[f"/sam/{reg.MODELS[small].filename}"] = sam2_bytes
    with pytest.raises(ModelError, match=f"is {NAME}, not {small}; it was removed"):
        download_model(small, base_url=server.url, progress=False)
    assert not reg.local_path(small).exists() and recorded_sha256(small) is None
    server.files[f"/sam/{FILE}"] = b"<html>not a checkpoint</html>"
    with pytest.raises(ModelError, match="unusable and was removed"):
        download_model(NAME, base_url=server.url, progress=False)


def test_a_file_put_in_place_by_hand_is_verified_once_and_recorded(server, sam2_bytes):
    target = reg.local_path(NAME)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(sam2_bytes)
    assert download_model(NAME, base_url=server.url, progress=False) == target
    assert server.requests == [] and recorded_sha256(NAME) == hashlib.sha256(sam2_bytes).hexdigest()


def test_without_sam2_nothing_is_transferred(server, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "sam2" else real(n, *a))
    with pytest.raises(ModelError, match="needs Meta's sam2 package .* SAM2_BUILD_CUDA=0"):
        download_model(NAME, base_url=server.url, progress=False)
    assert server.requests == [] and not reg.local_path(NAME).exists()
