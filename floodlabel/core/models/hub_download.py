"""Download a registered model that lives on the Hugging Face Hub (SAM 3: the gated facebook/sam3) into
`models_dir()`, through `huggingface_hub` with the user's token, with progress and cancel.

The token is huggingface_hub's own: HF_TOKEN, else the login saved by `hf auth login`. HF_ENDPOINT points it at
another server (a mirror, or the tests' local one). The file is fetched with `hf_hub_download(local_dir=
models_dir())`: huggingface_hub writes it to an `.incomplete` file under `models_dir()/.cache/huggingface/` and
renames it into place when complete, resumes that file on the next call, and checks the hub's size for it. Then, as
for SAM 2.1 (no checksum is published here either), the file is loaded and every tensor checked against the model
its sizes build (`core.sam3.checkpoint.load_sam3`), and its SHA-256 is recorded beside it; a later call checks the
file against that record and transfers nothing.

A refusal becomes one line saying what to do (`refusal_message`): no token, the licence not accepted (the gated
repository answers 401 / 403), a repository or file not found, no connection.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from pathlib import Path

from floodlabel.core.common.errors import DownloadError, ModelError
from floodlabel.core.models.registry import ModelSpec, local_path

LICENCE_PAGE = "https://huggingface.co/{repo}"


def download_from_hub(
    spec: ModelSpec,
    progress: bool,
    progress_callback,
    cancel_event: threading.Event | None,
    *,
    say,
    one_downloader,
    recorded,
    record,
) -> Path:
    """Fetch `spec.filename` from `spec.hf_repo` into models_dir() and return its path (see the module docstring).

    Called by download.download_model, which hands in its shared pieces (so this module does not import it back):
    `say(line)` for messages, `one_downloader(final, name, say, cancel_event)` the per-model lock,
    `recorded(name)` / `record(path)` the recorded SHA-256.

    progress_callback(bytes_done, bytes_total) as the bytes arrive; setting cancel_event stops the transfer within
    one chunk (the partial file stays for the next call to resume). DownloadError (one line) on a refusal, a
    network error or cancellation; ModelError when the file is not the model it should be (it is removed).
    """
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    final = local_path(spec.name)
    token = huggingface_hub.get_token()
    try:
        with one_downloader(final, spec.name, say, cancel_event):
            known = recorded(spec.name)
            if final.is_file() and known is not None and _sha256(final) == known:
                return final
            _reachable_or_raise(spec)
            bar = _progress_class(progress, progress_callback, cancel_event)
            got = huggingface_hub.hf_hub_download(spec.hf_repo, spec.filename, local_dir=final.parent,
                                                  token=token or None, tqdm_class=bar, endpoint=_endpoint())
            path = Path(got)
            if path.resolve() != final.resolve():
                os.replace(path, final)
            _check(final, spec)
            record(final)
    except _Cancelled:
        raise DownloadError(f"download of {spec.name} from {_where(spec)} cancelled") from None
    except (hf_errors.HfHubHTTPError, hf_errors.LocalEntryNotFoundError, hf_errors.EntryNotFoundError) as exc:
        raise DownloadError(refusal_message(spec, exc, token is not None)) from None
    except OSError as exc:
        raise DownloadError(f"cannot download {spec.name} from {_where(spec)}: {exc.strerror or exc}") from None
    except Exception as exc:  # httpx's connection errors and the like: one line, never a traceback
        if isinstance(exc, (ModelError, DownloadError)):
            raise
        raise DownloadError(f"cannot download {spec.name} from {_where(spec)}: {_first_line(exc)}") from None
    return final


def refusal_message(spec: ModelSpec, exc: Exception, has_token: bool) -> str:
    """One line for a refused or failed hub request: what happened and what the user does next."""
    from huggingface_hub import errors as hf_errors

    page = LICENCE_PAGE.format(repo=spec.hf_repo)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    login = "run `hf auth login` (or set HF_TOKEN to a token from https://huggingface.co/settings/tokens)"
    if isinstance(exc, hf_errors.GatedRepoError) or status in (401, 403):
        if not has_token:
            return (f"{spec.name} is gated on Hugging Face and no token was found: accept Meta's licence at {page}, "
                    f"then {login} and download again")
        return (f"{spec.name}: Hugging Face refused your token (HTTP {status}): accept Meta's licence at {page} "
                "with the account of that token and wait for access to be granted, then download again")
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):  # (a subclass of EntryNotFoundError) no answer at all
        return (f"cannot reach {_endpoint()} to download {spec.name} (no connection, or HF_HUB_OFFLINE is set); "
                f"or pass a local {spec.filename} with --model PATH")
    if isinstance(exc, (hf_errors.RepositoryNotFoundError, hf_errors.EntryNotFoundError)) or status == 404:
        return f"{spec.name}: {spec.hf_repo}/{spec.filename} was not found on {_endpoint()} (HTTP {status or 404})"
    return f"cannot download {spec.name} from {_where(spec)}: {_first_line(exc)}"


# ----------------------------------------------------------------------------------------------------- helpers


class _Cancelled(Exception):
    """Raised from the progress bar when cancel_event is set."""


def _progress_class(progress: bool, callback, cancel_event: threading.Event | None):
    """A tqdm class for hf_hub_download: forwards byte counts to `callback`, checks `cancel_event` per chunk,
    and shows nothing unless `progress`."""
    from tqdm.auto import tqdm

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = not progress
            kwargs.pop("name", None)  # huggingface_hub's own bar names, unknown to plain tqdm
            super().__init__(*args, **kwargs)
            self._done = int(kwargs.get("initial") or 0)
            self._report()

        def update(self, n=1):
            if cancel_event is not None and cancel_event.is_set():
                raise _Cancelled()
            self._done += int(n or 0)
            self._report()
            return super().update(n)

        def _report(self) -> None:
            if callback is not None and self.total:
                callback(self._done, int(self.total))

    return Bar


def _check(path: Path, spec: ModelSpec) -> None:
    """Load the fresh file and check its architecture; remove it and raise ModelError otherwise."""
    from floodlabel.core.sam3.checkpoint import load_sam3

    try:
        arch = load_sam3(path).architecture.name
    except ModelError as exc:
        path.unlink(missing_ok=True)
        raise ModelError(f"downloaded file from {_where(spec)} is unusable and was removed: {exc}") from None
    if arch != spec.architecture:
        path.unlink(missing_ok=True)
        raise ModelError(f"downloaded file from {_where(spec)} is {arch}, not {spec.architecture}; it was removed")


def _sha256(path: Path) -> str:
    from floodlabel.core.common.hashing import sha256_file

    return sha256_file(path)


def _reachable_or_raise(spec: ModelSpec, timeout: float = 5.0) -> None:
    """One TCP connection to the endpoint first, so that no network says so at once: huggingface_hub retries a
    refused connection with back-off for about 25 s. Skipped behind a proxy (the endpoint may be reachable only
    through it) and in HF_HUB_OFFLINE mode (huggingface_hub answers that itself)."""
    from huggingface_hub import constants

    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    if constants.HF_HUB_OFFLINE or any(os.environ.get(name) for name in proxies):
        return
    url = urllib.parse.urlsplit(_endpoint())
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return  # a malformed endpoint: huggingface_hub's own error says more
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        raise DownloadError(f"cannot reach {_endpoint()} to download {spec.name} (no connection: "
                            f"{exc.strerror or exc}); check the network, or set HF_ENDPOINT to a mirror") from None


def _endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub reads it once, when imported), else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT", "").strip() or constants.ENDPOINT).rstrip("/")


def _where(spec: ModelSpec) -> str:
    return f"{_endpoint()}/{spec.hf_repo}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else type(exc).__name__)
