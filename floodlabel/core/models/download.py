"""Download a registered SAM checkpoint into `models_dir()`: checksum-checked, retried, resumable, cancellable.

Checksums: SAM v1 files are checked against Meta's published MD5. Meta publishes none for SAM 2.1, so a SAM 2.1
download is verified by loading it (`torch.load(weights_only=True)`, every tensor's name and shape against the
model its size builds) and its SHA-256 is then recorded beside it (`<filename>.sha256`, `recorded_sha256`); every
later fetch checks the file against that record (a changed or damaged file is downloaded again and checked against
it). What this does not prove: that the first download is the file Meta published (nothing to compare it with).

pooch drives the download (`Pooch.fetch` with `known_hash="md5:..."` and `retry_if_failed`): it hands our
downloader a temporary file in `models_dir()`, checks the hash, and only then moves it to the final name
(`shutil.move` within one folder, i.e. an atomic rename); on any failure the temporary file is deleted. So the
final path holds either nothing or a checksum-verified file.

Resume: pooch itself doesn't resume, so our downloader keeps the bytes received so far in `<filename>.part` and asks
for the rest with an HTTP `Range` header on the next attempt (pooch retry, a later call, or after a cancel). A server
that ignores `Range` (answers 200) gets a full download. A completed `.part` is moved into pooch's temporary file, so a
checksum failure discards it and the next attempt starts from zero.

One downloader per model: a file lock (`filelock`, in `<cache>/locks/<filename>.lock`, outside the models folder)
is held around the whole fetch, so two processes never write one `.part`. The second one says that another
download is running (on stderr with progress=True, and through `message_callback`), waits for it, and then finds
the verified file in place (no second transfer); cancelling works while waiting.

pooch's own log lines ("Downloading file ...", "Failed to download ... Will attempt again ...") are not printed:
retries reach the caller as one plain message through `message_callback` (and stderr with progress=True).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import filelock
import pooch
import requests
from tqdm import tqdm

from floodlabel.core.common.atomic_files import write_atomic
from floodlabel.core.common.errors import DownloadError, ModelError
from floodlabel.core.common.hashing import sha256_file
from floodlabel.core.models.registry import SAM2, ModelSpec, download_url, get_spec, local_path
from floodlabel.core.common.paths import cache_dir, models_dir
from floodlabel.core.sam.checkpoint import infer_architecture, read_state_dict

ProgressCallback = Callable[[int, int], None]
"""Called as (bytes_done, bytes_total) while downloading; bytes_total is 0 when the server doesn't say."""
MessageCallback = Callable[[str], None]
"""Called with one plain line: another download of the model is running (waiting for it), or a retry."""
LOCK_POLL_S = 0.2  # how often a waiting downloader checks its cancel event

CHUNK_BYTES = 256 * 1024
TIMEOUT_S = (15.0, 60.0)  # (connect, between reads)


def download_model(
    name: str,
    base_url: str | None = None,
    progress: bool = True,
    progress_callback: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
    retries: int = 3,
    message_callback: MessageCallback | None = None,
) -> Path:
    """Fetch the checkpoint of registered model `name` into models_dir() and return its path.

    `base_url` (else env FLOODLABEL_MODEL_BASE_URL, else the official URL) gets the file name appended.
    `progress` shows a tqdm bar on stderr. Setting `cancel_event` stops the transfer within one chunk.
    An already cached file whose MD5 matches is returned without downloading. While another process downloads
    the same model, this call says so (message_callback; stderr with progress) and waits for it.

    Raises ModelError for an unknown name, or when the downloaded file is not a SAM of the expected architecture
    (the file is removed); DownloadError (one line: URL and reason) for network errors, HTTP errors, checksum
    mismatch, interrupted transfers (after `retries` further attempts) and cancellation. On any error nothing is
    left at the final path; a partial transfer may remain in `<filename>.part` for resuming.
    """
    spec = get_spec(name)
    if spec.hf_repo is not None:  # SAM 3: the Hugging Face Hub with the user's token (HF_ENDPOINT, not base_url)
        from floodlabel.core.models.hub_download import download_from_hub

        return download_from_hub(spec, progress, progress_callback, cancel_event,
                                 say=_messenger(progress, message_callback), one_downloader=_one_downloader,
                                 recorded=recorded_sha256, record=_record_sha256)
    url = download_url(name, base_url)
    final = local_path(name)
    if spec.family == SAM2:
        _require_sam2(name)  # before any transfer: without sam2 the download could not be verified
    downloader = _ResumableDownloader(final.with_name(final.name + ".part"), progress, progress_callback, cancel_event)
    say = _messenger(progress, message_callback)
    known = None
    try:
        with _one_downloader(final, name, say, cancel_event):
            known = _known_hash(spec, final)  # under the lock: a record being written by another process is there
            store = pooch.create(
                path=models_dir(),
                base_url=url.rsplit("/", 1)[0] + "/",
                registry={spec.filename: known},
                urls={spec.filename: url},
                retry_if_failed=max(0, retries),
            )
            with _pooch_messages(name, say):
                store.fetch(spec.filename, downloader=downloader)
            if downloader.called or known is None:  # still under the lock: a waiter never sees a file about to go
                _check_architecture(final, spec, url)
            if spec.md5 is None and known is None:
                _record_sha256(final)
    except _Cancelled:
        raise DownloadError(f"download of {name} from {url} cancelled") from None
    except _HttpStatusError as exc:
        raise DownloadError(f"cannot download {url}: {exc}") from None
    except ValueError as exc:  # pooch: hash mismatch
        got = re.search(r"but got (\w+)", str(exc))
        kind, want = (known or "md5:").split(":", 1)
        detail = f" (got {kind} {got.group(1)})" if got else ""
        where = "" if spec.md5 else f", recorded at its first download in {recorded_sha256_path(final)}"
        raise DownloadError(f"cannot download {url}: checksum mismatch, expected {kind} {want}{where}{detail}") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"cannot download {url}: {_network_reason(exc)}") from None
    except OSError as exc:
        raise DownloadError(f"cannot download {url}: cannot write to {models_dir()}: {exc.strerror or exc}") from None
    return final


def recorded_sha256_path(path: Path) -> Path:
    """Where the SHA-256 of a model file without a published checksum (SAM 2.1) is recorded: `<file>.sha256`."""
    return path.with_name(path.name + ".sha256")


def recorded_sha256(name: str) -> str | None:
    """The SHA-256 recorded when registered model `name` was first downloaded (hex), or None."""
    try:
        text = recorded_sha256_path(local_path(name)).read_text().split()
    except OSError:
        return None
    return text[0] if text and re.fullmatch(r"[0-9a-f]{64}", text[0]) else None


# ----------------------------------------------------------------------------------------------------- helpers


def _require_sam2(name: str) -> None:
    import importlib.util

    if importlib.util.find_spec("sam2") is None:
        from floodlabel.core.sam2.checkpoint import INSTALL_HINT

        raise ModelError(f"{name} needs Meta's sam2 package to be verified and run, and it is not installed: "
                         f"{INSTALL_HINT}")


def _known_hash(spec: ModelSpec, final: Path) -> str | None:
    """pooch's known_hash: the published MD5, else the recorded SHA-256 (only while the file is there), else None."""
    if spec.md5:
        return f"md5:{spec.md5}"
    recorded = recorded_sha256(spec.name)
    if recorded is None or not final.is_file():
        recorded_sha256_path(final).unlink(missing_ok=True)  # a record without its file: a new first download
        return None
    return f"sha256:{recorded}"


def _record_sha256(path: Path) -> None:
    """Record the SHA-256 of a verified first download (durable: it guards every later use of the file)."""
    write_atomic(recorded_sha256_path(path), f"{sha256_file(path)}  {path.name}\n".encode())


class _Cancelled(Exception):
    """Raised inside the downloader when cancel_event is set (not retried by pooch)."""


def _messenger(progress: bool, callback: MessageCallback | None) -> MessageCallback:
    def say(line: str) -> None:
        if progress:
            tqdm.write(f"floodlabel: {line}", file=sys.stderr)
        if callback is not None:
            callback(line)
    return say


@contextlib.contextmanager
def _one_downloader(final: Path, name: str, say: MessageCallback,
                    cancel_event: threading.Event | None) -> Iterator[None]:
    """Hold the model's download lock; if another process holds it, say so and wait (cancellable)."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(locks / f"{final.name}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        say(f"another download of {name} is running (lock {lock.lock_file}); waiting for it to finish")
        while True:
            if cancel_event is not None and cancel_event.is_set():
                raise _Cancelled() from None
            try:
                lock.acquire(timeout=LOCK_POLL_S)
                break
            except filelock.Timeout:
                continue
    try:
        yield
    finally:
        lock.release()


class _PoochRelay(logging.Handler):
    """Turns pooch's retry log lines into one plain message; drops the rest ("Downloading file ...")."""

    def __init__(self, name: str, say: MessageCallback) -> None:
        super().__init__(logging.INFO)
        self.model, self.say = name, say

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        again = re.search(r"Will attempt the download again (\d+) more time", text)
        if again:
            self.say(f"download of {self.model} failed; retrying ({again.group(1)} attempts left)")


@contextlib.contextmanager
def _pooch_messages(name: str, say: MessageCallback) -> Iterator[None]:
    logger = pooch.get_logger()
    saved = logger.handlers[:], logger.propagate, logger.level
    relay = _PoochRelay(name, say)
    logger.handlers[:] = [relay]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


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


def _check_architecture(path: Path, spec: ModelSpec, url: str) -> None:
    """Read the fresh download; remove it and raise ModelError unless it is a model of the expected architecture.

    SAM v1 (MD5-checked already): the architecture from tensor shapes. SAM 2.1 (no published checksum): the file is
    loaded (weights_only) and every tensor checked against the model of its size (`load_plain_sam2`, strict).
    """
    expected = spec.architecture
    try:
        state = read_state_dict(path)
        from floodlabel.core.sam2.checkpoint import infer_architecture as infer_sam2, is_sam2_state, load_plain_sam2

        if is_sam2_state(state):
            arch = infer_sam2(state, path).name
            del state
            if spec.family == SAM2 and arch == expected:
                load_plain_sam2(path)  # every tensor's name and shape; raises ModelError
        else:
            arch = infer_architecture(state, path).name
    except ModelError as exc:
        path.unlink(missing_ok=True)
        raise ModelError(f"downloaded file from {url} is unusable and was removed: {exc}") from None
    if arch != expected:
        path.unlink(missing_ok=True)
        what = arch if arch.startswith("sam2") else f"a SAM {arch}"
        raise ModelError(f"downloaded file from {url} is {what}, not {expected}; it was removed")
