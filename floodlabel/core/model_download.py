"""Download a registered SAM checkpoint into `models_dir()`: MD5-checked, retried, resumable, cancellable.

pooch drives the download (`Pooch.fetch` with `known_hash="md5:..."` and `retry_if_failed`): it hands our
downloader a temporary file in `models_dir()`, checks the hash, and only then moves it to the final name
(`shutil.move` within one folder, i.e. an atomic rename); on any failure the temporary file is deleted. So the
final path holds either nothing or a checksum-verified file.

Resume: pooch itself doesn't resume, so our downloader keeps the bytes received so far in `<filename>.part` and asks
for the rest with an HTTP `Range` header on the next attempt (pooch retry, a later call, or after a cancel). A server
that ignores `Range` (answers 200) gets a full download. A completed `.part` is moved into pooch's temporary file, so a
checksum failure discards it and the next attempt starts from zero.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path
from typing import Callable

import pooch
import requests
from tqdm import tqdm

from floodlabel.core.errors import DownloadError, ModelError
from floodlabel.core.model_registry import download_url, get_spec, local_path
from floodlabel.core.paths import models_dir
from floodlabel.core.sam_checkpoint import infer_architecture, read_state_dict

ProgressCallback = Callable[[int, int], None]
"""Called as (bytes_done, bytes_total) while downloading; bytes_total is 0 when the server doesn't say."""

CHUNK_BYTES = 256 * 1024
TIMEOUT_S = (15.0, 60.0)  # (connect, between reads)


def download_model(
    name: str,
    base_url: str | None = None,
    progress: bool = True,
    progress_callback: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
    retries: int = 3,
) -> Path:
    """Fetch the checkpoint of registered model `name` into models_dir() and return its path.

    `base_url` (else env FLOODLABEL_MODEL_BASE_URL, else the official URL) gets the file name appended.
    `progress` shows a tqdm bar on stderr. Setting `cancel_event` stops the transfer within one chunk.
    An already cached file whose MD5 matches is returned without downloading.

    Raises ModelError for an unknown name, or when the downloaded file is not a SAM of the expected architecture
    (the file is removed); DownloadError (one line: URL and reason) for network errors, HTTP errors, checksum
    mismatch, interrupted transfers (after `retries` further attempts) and cancellation. On any error nothing is
    left at the final path; a partial transfer may remain in `<filename>.part` for resuming.
    """
    spec = get_spec(name)
    url = download_url(name, base_url)
    final = local_path(name)
    downloader = _ResumableDownloader(final.with_name(final.name + ".part"), progress, progress_callback, cancel_event)
    store = pooch.create(
        path=models_dir(),
        base_url=url.rsplit("/", 1)[0] + "/",
        registry={spec.filename: f"md5:{spec.md5}"},
        urls={spec.filename: url},
        retry_if_failed=max(0, retries),
    )
    try:
        store.fetch(spec.filename, downloader=downloader)
    except _Cancelled:
        raise DownloadError(f"download of {name} from {url} cancelled") from None
    except _HttpStatusError as exc:
        raise DownloadError(f"cannot download {url}: {exc}") from None
    except ValueError as exc:  # pooch: hash mismatch
        got = re.search(r"but got (\w+)", str(exc))
        detail = f" (got md5 {got.group(1)})" if got else ""
        raise DownloadError(f"cannot download {url}: checksum mismatch, expected md5 {spec.md5}{detail}") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"cannot download {url}: {_network_reason(exc)}") from None
    except OSError as exc:
        raise DownloadError(f"cannot download {url}: cannot write to {models_dir()}: {exc.strerror or exc}") from None
    if downloader.called:
        _check_architecture(final, spec.architecture, url)
    return final


# ----------------------------------------------------------------------------------------------------- helpers


class _Cancelled(Exception):
    """Raised inside the downloader when cancel_event is set (not retried by pooch)."""


class _HttpStatusError(Exception):
    """A 4xx answer other than 408/429: retrying won't help, so pooch must not retry it."""


class _ResumableDownloader:
    """A pooch downloader: `(url, output_file, pooch)` streams url into `.part`, then moves it onto output_file."""

    def __init__(self, part: Path, progress: bool, callback: ProgressCallback | None,
                 cancel_event: threading.Event | None) -> None:
        self.part = part
        self.progress = progress
        self.callback = callback
        self.cancel_event = cancel_event
        self.called = False

    def __call__(self, url: str, output_file: str, pooch_instance: object) -> None:
        self.called = True
        self._check_cancel()
        offset = self.part.stat().st_size if self.part.is_file() else 0
        response = self._request(url, offset)
        if offset and response.status_code == 416:  # .part is already complete (or stale): start over
            response.close()
            self.part.unlink(missing_ok=True)
            offset = 0
            response = self._request(url, 0)
        with response:
            _raise_for_status(response)
            if offset and not _resumes_at(response, offset):
                offset = 0  # server ignored Range: full body follows
            total = _total_size(response, offset)
            self._stream(response, offset, total)
        os.replace(self.part, output_file)

    def _request(self, url: str, offset: int) -> requests.Response:
        headers = {"Range": f"bytes={offset}-", "Accept-Encoding": "identity"} if offset else {}
        return requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S, allow_redirects=True)

    def _stream(self, response: requests.Response, offset: int, total: int) -> None:
        done = offset
        with open(self.part, "ab" if offset else "wb") as out, tqdm(
            total=total or None, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=self.part.name.removesuffix(".part"), file=sys.stderr, disable=not self.progress, leave=True,
        ) as bar:
            if self.callback:
                self.callback(done, total)
            for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                self._check_cancel()
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                if self.callback:
                    self.callback(done, total)
        if total and done != total:
            raise requests.exceptions.ConnectionError(f"transfer interrupted after {done} of {total} bytes")

    def _check_cancel(self) -> None:
        if self.cancel_event is not None and self.cancel_event.is_set():
            raise _Cancelled()


def _raise_for_status(response: requests.Response) -> None:
    code = response.status_code
    if code < 400:
        return
    reason = f"HTTP {code} {response.reason or ''}".strip()
    if code < 500 and code not in (408, 429):
        raise _HttpStatusError(reason)
    raise requests.exceptions.HTTPError(reason, response=response)  # 5xx, 408, 429: worth retrying


def _resumes_at(response: requests.Response, offset: int) -> bool:
    """True for a 206 whose Content-Range starts at `offset`."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return response.status_code == 206 and match is not None and int(match.group(1)) == offset


def _total_size(response: requests.Response, offset: int) -> int:
    """Full file size in bytes from Content-Range or Content-Length; 0 if unknown."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match and response.status_code == 206:
        return int(match.group(1))
    length = response.headers.get("Content-Length", "")
    return (offset if response.status_code == 206 else 0) + int(length) if length.isdigit() else 0


def _network_reason(exc: requests.exceptions.RequestException) -> str:
    """One short line for a requests error (its default text nests several urllib3 reprs)."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text:
        return "transfer interrupted (connection closed before the whole file arrived)"
    errno_reason = re.search(r"\[Errno [^\]]+\] ([^'\")]+)", text)
    if errno_reason:
        return errno_reason.group(1).strip()
    if "Failed to resolve" in text or "NameResolutionError" in text:
        return "host name could not be resolved"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _check_architecture(path: Path, expected: str, url: str) -> None:
    """Read the fresh download; remove it and raise ModelError unless it is a SAM of the expected architecture."""
    try:
        arch = infer_architecture(read_state_dict(path), path).name
    except ModelError as exc:
        path.unlink(missing_ok=True)
        raise ModelError(f"downloaded file from {url} is unusable and was removed: {exc}") from None
    if arch != expected:
        path.unlink(missing_ok=True)
        raise ModelError(f"downloaded file from {url} is a SAM {arch}, not {expected}; it was removed")
