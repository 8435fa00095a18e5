"""Embedding cache: an in-memory LRU in front of a size-bounded disk cache shared by processes.

An entry is keyed by the model id AND the image's content hash (`image_key`), so embeddings of
different models never mix. In memory the Embedding object is kept as handed in (full precision,
`extra` included), and the memory level is bounded by bytes (`memory_bytes`, default 256 MiB): what
`held_bytes` counts, features plus the decoder state backends add to `extra` (SAM v1 about 12 MiB an
entry, SAM 2.1 about 30 MiB), re-measured at each insert since `extra` grows after the put. On disk each entry is ONE file, written with `atomic_files.atomic_writer`
(a `.femb-tmp-<12 hex>` temp file `os.replace`d into place, not fsynced), so it is all-or-nothing:

    8 bytes   magic b"FLEMBED1"
    4 bytes   little-endian uint32 n: length of the JSON header
    n bytes   JSON header: model_id, image_key, original_size (H, W), input_size (h, w), kind
              ("torch" | "numpy"), shape, stored dtype, returned dtype, payload bytes, crc32
    padding   to a 64-byte boundary
    payload   the feature array, C order. Floating features are stored as float16 (SAM:
              (1, 256, 64, 64) -> 2 MiB) and come back as float32; other dtypes (e.g. a classic
              backend's uint8 RGB image) are stored exactly.

Features may also be a dict of named arrays or tensors (SAM 2.1: "image_embed" (1, 256, 64, 64),
"high_res_feats_0" (1, 32, 256, 256), "high_res_feats_1" (1, 64, 128, 128) -> 8 MiB in float16). Then
kind is "torch-dict" | "numpy-dict", the header lists "arrays" (name, shape, stored and returned
dtype, offset into the payload, bytes; each 64-byte aligned) instead of one shape, and the payload
holds them in that order under one crc32. The disk bound counts each entry's file size, so a SAM 2.1
entry weighs four SAM v1 entries (`entry_bytes` says how much an embedding takes before it is put).

A truncated, zero-byte, garbage or mismatching file is detected on load (magic, header, size,
crc32 of the payload), deleted and counted as a miss. `extra` is never written to disk.
Recency on disk is the file mtime (touched on every hit); after each put the folder is trimmed
to `max_disk_bytes` under an fcntl.flock on `.lock`, least recently used first, and temp files
left by crashed writers (`is_temp_name`: this version's TEMP_PREFIX names, older versions'
`*.tmp`) are removed once they are older than STALE_TEMP_SECONDS.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from floodlabel.core.common.atomic_files import atomic_writer
from floodlabel.core.common.paths import embeddings_dir
from floodlabel.core.segment.embedding_entry import CorruptEntry, decode_entry, encode_entry, entry_bytes
from floodlabel.core.segment.held_bytes import held_bytes
from floodlabel.core.segment.segmenter import Embedding

__all__ = ["CacheStats", "EmbeddingCache", "default_max_disk_bytes", "entry_bytes", "is_temp_name"]

ENTRY_SUFFIX = ".femb"
TEMP_PREFIX = ".femb-tmp-"
"""An entry being written is `<TEMP_PREFIX><12 hex>` (`atomic_writer(..., prefix=TEMP_PREFIX)`)."""
TEMP_SUFFIX = ".tmp"
"""Temp files of versions before atomic_files ended with this; still cleaned up."""
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"[0-9a-f]{12}")
LOCK_NAME = ".lock"
STALE_TEMP_SECONDS = 10 * 60
DEFAULT_MAX_DISK_BYTES = 2 * 1024**3
DEFAULT_MEMORY_BYTES = 256 * 1024**2
"""The memory level's default bound: about 20 SAM v1 or 8 SAM 2.1 embeddings with their decoder state."""
MAX_GB_ENV = "FLOODLABEL_CACHE_MAX_GB"

log = logging.getLogger(__name__)


def default_max_disk_bytes() -> int:
    """The disk cache's size limit: FLOODLABEL_CACHE_MAX_GB (GiB, a positive number) when set, else 2 GiB.

    Every process sharing a cache folder trims it to its own limit, so a shared folder filled by `floodlabel embed`
    needs the same setting on every machine that uses it (README, "Large datasets")."""
    text = os.environ.get(MAX_GB_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_DISK_BYTES
    try:
        gb = float(text)
    except ValueError:
        gb = -1.0
    if not (gb > 0 and gb < 1e9):
        from floodlabel.core.common.errors import FloodLabelError

        raise FloodLabelError(f"{MAX_GB_ENV}={text!r} is not accepted: a positive number of GiB, e.g. 200")
    return int(gb * 1024**3)


@dataclass
class CacheStats:
    """Lookup counters of one EmbeddingCache (this process only)."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0


class EmbeddingCache:
    """Memory LRU + disk cache of Embeddings, keyed by (model_id, image_key). Thread-safe.

    directory:      the disk folder (default: paths.embeddings_dir()); may be shared by processes.
    max_disk_bytes: the folder's entries are trimmed to this many bytes after each put (default:
                    `default_max_disk_bytes()`, 2 GiB unless FLOODLABEL_CACHE_MAX_GB says otherwise).
    memory_bytes:   the memory level holds at most this many bytes (`held_bytes`: features plus the state in
                    `extra`), least recently used dropped first; the newest entry always stays, even alone over
                    the bound. 0 disables the memory level. Default DEFAULT_MEMORY_BYTES (256 MiB).
    memory_items:   optionally also at most this many embeddings (None: no count bound; 0 disables the level).
    """

    def __init__(
        self,
        directory: Path | None = None,
        max_disk_bytes: int | None = None,
        memory_items: int | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
    ) -> None:
        self.directory = Path(directory) if directory is not None else embeddings_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_disk_bytes = int(max_disk_bytes if max_disk_bytes is not None else default_max_disk_bytes())
        self.memory_items = None if memory_items is None else int(memory_items)
        self.memory_bytes = int(memory_bytes)
        self._memory: OrderedDict[tuple[str, str], Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._stats = CacheStats()

    @property
    def memory_held_bytes(self) -> int:
        """Bytes the memory level holds now (`held_bytes` of each entry, measured at this call)."""
        with self._lock:
            return sum(held_bytes(emb) for emb in self._memory.values())

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(**vars(self._stats))

    def get(self, model_id: str, image_key: str) -> Embedding | None:
        """The cached embedding, or None. Disk hits come back with float32 features and go to memory."""
        key = (model_id, image_key)
        with self._lock:
            emb = self._memory.get(key)
            if emb is not None:
                self._memory.move_to_end(key)
                self._stats.memory_hits += 1
                return emb
        emb = self._load(model_id, image_key)
        with self._lock:
            if emb is None:
                self._stats.misses += 1
                return None
            self._stats.disk_hits += 1
            self._remember(key, emb)
        return emb

    def put(self, model_id: str, image_key: str, embedding: Embedding) -> None:
        """Keep `embedding` in memory and on disk, then trim the disk folder.

        Disk errors (full disk, permissions) are logged, not raised: the entry stays in memory.
        """
        with self._lock:
            self._remember((model_id, image_key), embedding)
        try:
            self._save(model_id, image_key, embedding)
        except OSError as exc:
            log.warning("embedding cache: could not write %s: %s", self.path_for(model_id, image_key), exc)
            return
        self.evict()

    def get_or_compute(
        self, model_id: str, image_key: str, compute: Callable[[], Embedding]
    ) -> Embedding:
        """The cached embedding, else `compute()` (stored, then returned).

        Threads asking for the same key at once compute it only once; exceptions from `compute`
        propagate and cache nothing.
        """
        emb = self.get(model_id, image_key)
        if emb is not None:
            return emb
        key = (model_id, image_key)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        try:
            with key_lock:
                with self._lock:  # another thread may have finished it while we waited
                    emb = self._memory.get(key)
                if emb is None:
                    emb = self._load(model_id, image_key)
                if emb is None:
                    emb = compute()
                    self.put(model_id, image_key, emb)
                return emb
        finally:
            with self._lock:
                if not key_lock.locked():
                    self._key_locks.pop(key, None)

    def contains(self, model_id: str, image_key: str) -> bool:
        """Whether an entry exists in memory or on disk (the disk file is not validated; no stats)."""
        with self._lock:
            if (model_id, image_key) in self._memory:
                return True
        return self.path_for(model_id, image_key).is_file()

    def forget(self, model_id: str, image_key: str) -> None:
        """Drop one entry from memory and disk (benchmarks: make an image cold again)."""
        with self._lock:
            self._memory.pop((model_id, image_key), None)
        _unlink(self.path_for(model_id, image_key))

    def clear(self) -> None:
        """Forget everything: the memory LRU and every entry and temp file in the folder."""
        with self._lock:
            self._memory.clear()
        with self._folder_lock():
            for entry in self._scan():
                if entry.name.endswith(ENTRY_SUFFIX) or is_temp_name(entry.name):
                    _unlink(Path(entry.path))

    def evict(self) -> None:
        """Trim the folder to max_disk_bytes (oldest mtime first) and drop stale temp files."""
        now = time.time()
        with self._folder_lock():
            entries: list[tuple[float, str, int]] = []
            total = 0
            for entry in self._scan():
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if is_temp_name(entry.name):
                    if now - st.st_mtime > STALE_TEMP_SECONDS:
                        _unlink(Path(entry.path))
                elif entry.name.endswith(ENTRY_SUFFIX):
                    entries.append((st.st_mtime, entry.name, st.st_size))
                    total += st.st_size
            entries.sort()
            for _mtime, name, size in entries:
                if total <= self.max_disk_bytes:
                    break
                _unlink(self.directory / name)
                total -= size

    def path_for(self, model_id: str, image_key: str) -> Path:
        """The disk file of an entry: a hash of model id and image key."""
        h = hashlib.blake2b(digest_size=16)
        h.update(model_id.encode())
        h.update(b"\0")
        h.update(image_key.encode())
        return self.directory / (h.hexdigest() + ENTRY_SUFFIX)

    # ---- helpers ------------------------------------------------------------------------------

    def _remember(self, key: tuple[str, str], emb: Embedding) -> None:
        """Insert into the memory LRU, then drop the least recently used entries until the rest fit
        memory_bytes (and memory_items); the new one always stays. Caller holds self._lock."""
        if self.memory_bytes <= 0 or self.memory_items == 0:
            self._memory.clear()
            return
        self._memory[key] = emb
        self._memory.move_to_end(key)
        if self.memory_items is not None:
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)
        sizes = [held_bytes(e) for e in self._memory.values()]  # now: extra may have grown since each put
        total = sum(sizes)
        for size in sizes[:-1]:
            if total <= self.memory_bytes:
                break
            self._memory.popitem(last=False)
            total -= size

    def _save(self, model_id: str, image_key: str, emb: Embedding) -> None:
        encoded = encode_entry(model_id, image_key, emb)
        if encoded is None:
            log.debug("embedding cache: %s features are not an array; memory only", type(emb.features))
            return
        head, payloads = encoded
        # a cache entry: all-or-nothing, but not fsynced (a power cut may lose it, never half-write it)
        with atomic_writer(self.path_for(model_id, image_key), durable=False, prefix=TEMP_PREFIX) as f:
            f.write(head)
            for payload in payloads:
                f.write(payload)

    def _load(self, model_id: str, image_key: str) -> Embedding | None:
        """Read and verify an entry; a bad one is deleted. None on any miss."""
        path = self.path_for(model_id, image_key)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                size = st.st_size
                buf = bytearray(size)
                got = f.readinto(buf)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("embedding cache: could not read %s: %s", path, exc)
            return None
        try:
            if got != size:
                raise CorruptEntry("short read")
            emb = decode_entry(buf, model_id, image_key)
        except CorruptEntry as exc:
            log.warning("embedding cache: dropping bad entry %s (%s)", path.name, exc)
            _unlink_if_same(path, st)
            return None
        try:
            os.utime(path)  # recency for eviction
        except OSError:
            pass
        return emb

    def _scan(self) -> Iterator[os.DirEntry]:
        try:
            with os.scandir(self.directory) as it:
                yield from it
        except FileNotFoundError:
            return

    @contextmanager
    def _folder_lock(self) -> Iterator[None]:
        """Exclusive advisory lock across processes sharing the folder."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK_NAME, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def is_temp_name(name: str) -> bool:
    """Whether a file name in the cache folder is a writer's temp file (this version's or an older one's)."""
    return bool(_TEMP_NAME.fullmatch(name)) or name.endswith(TEMP_SUFFIX)


def _unlink_if_same(path: Path, st: os.stat_result) -> None:
    """Remove path unless another writer has replaced it since `st` was taken."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
        _unlink(path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("embedding cache: could not remove %s: %s", path, exc)
