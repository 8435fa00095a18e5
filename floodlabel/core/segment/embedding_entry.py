"""The bytes of one embedding-cache entry (see embedding_cache for the file layout): encode an Embedding's
features into a header and payload pieces, decode and verify them back.

A single array is stored as before (one "shape"); a dict of named arrays (SAM 2.1's three feature maps) lists them
under "arrays", each 64-byte aligned in one payload with one crc32. Floats are stored as float16 unless they would
overflow, and come back as float32.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from typing import Any

import numpy as np

from floodlabel.core.segment.segmenter import Embedding

_MAGIC = b"FLEMBED1"
_ALIGN = 64
_MAX_HEADER = 1 << 16
_CAST_CHUNK = 16384  # below torch's GRAIN_SIZE (32768): each copy_ runs serially


class CorruptEntry(Exception):
    """An on-disk entry that must not be trusted."""


def entry_bytes(embedding: Embedding, model_id: str = "", image_key: str = "") -> int:
    """How many bytes the disk entry of `embedding` takes (header included), or 0 when it is kept in memory only.

    SAM v1 (1, 256, 64, 64): about 2 MiB; SAM 2.1's three maps: about 8 MiB. What the disk bound counts."""
    encoded = encode_entry(model_id, image_key, embedding)
    if encoded is None:
        return 0
    head, payloads = encoded
    return len(head) + sum(p.nbytes for p in payloads)


def encode_entry(model_id: str, image_key: str, emb: Embedding) -> tuple[bytes, list[memoryview]] | None:
    """(header bytes, payload pieces) of one entry, or None when the features are not arrays."""
    header: dict[str, Any] = {
        "model_id": model_id,
        "image_key": image_key,
        "original_size": [int(v) for v in emb.original_size],
        "input_size": [int(v) for v in emb.input_size],
    }
    if isinstance(emb.features, dict) and emb.features:
        arrays, payloads, offset, kinds = [], [], 0, set()
        crc = 0
        for name, value in emb.features.items():
            arr, kind = _to_numpy(value)
            if arr is None or not isinstance(name, str):
                return None
            kinds.add(kind)
            stored, out_dtype = _storage_array(arr)
            pad = -offset % _ALIGN
            if pad:
                payloads.append(memoryview(bytes(pad)))
                crc = zlib.crc32(payloads[-1], crc)
                offset += pad
            piece = memoryview(stored).cast("B") if stored.size else memoryview(b"")
            payloads.append(piece)
            crc = zlib.crc32(piece, crc)
            arrays.append({"name": name, "shape": list(stored.shape), "dtype": stored.dtype.str,
                           "out_dtype": out_dtype.str, "offset": offset, "nbytes": stored.nbytes})
            offset += stored.nbytes
        header.update(kind=("torch" if kinds == {"torch"} else "numpy") + "-dict", arrays=arrays, nbytes=offset,
                      crc32=crc)
        return _encode_header(header), payloads
    arr, kind = _to_numpy(emb.features)
    if arr is None:
        return None
    stored, out_dtype = _storage_array(arr)
    payload = memoryview(stored).cast("B") if stored.size else memoryview(b"")
    header.update(kind=kind, shape=list(stored.shape), dtype=stored.dtype.str, out_dtype=out_dtype.str,
                  nbytes=stored.nbytes, crc32=zlib.crc32(payload))
    return _encode_header(header), [payload]


def _to_numpy(features: Any) -> tuple[np.ndarray | None, str]:
    """features as a C-contiguous numpy array plus its kind ("torch" | "numpy")."""
    if isinstance(features, np.ndarray):
        return np.ascontiguousarray(features), "numpy"
    torch = sys.modules.get("torch")  # a tensor means torch is loaded
    if torch is not None and isinstance(features, torch.Tensor):
        t = features.detach().cpu()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16
            t = t.float()
        return np.ascontiguousarray(t.numpy()), "torch"
    return None, "numpy"


def _storage_array(arr: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    """(array as stored, dtype handed back). Floats go to float16 unless they would overflow."""
    if arr.dtype.kind != "f":
        return arr, arr.dtype
    f16_max = float(np.finfo(np.float16).max)
    if arr.size and max(float(arr.max()), -float(arr.min())) > f16_max:
        return arr.astype(np.float32, copy=False), np.dtype(np.float32)
    return _cast(arr, np.float16), np.dtype(np.float32)


def _cast(arr: np.ndarray, dtype: type) -> np.ndarray:
    """arr.astype(dtype) for float16 <-> float32, through torch when it is loaded.

    torch converts with F16C (~0.3 ms for 1M values vs ~2 ms in numpy). It is fed chunks below
    its parallel grain size so the copy stays on the calling thread: a 2-thread copy on a busy
    2-core machine waits for a time slice (measured 10-25 ms).
    """
    torch = sys.modules.get("torch")
    if torch is None or not arr.flags.writeable:  # from_numpy warns on read-only arrays
        return arr.astype(dtype)
    src = torch.from_numpy(arr).reshape(-1)
    out = torch.empty(src.numel(), dtype=torch.float16 if np.dtype(dtype) == np.float16 else torch.float32)
    for i in range(0, src.numel(), _CAST_CHUNK):
        out[i : i + _CAST_CHUNK].copy_(src[i : i + _CAST_CHUNK])
    return out.numpy().reshape(arr.shape)


def _encode_header(header: dict) -> bytes:
    body = json.dumps(header, separators=(",", ":")).encode()
    start = len(_MAGIC) + 4 + len(body)
    body += b" " * (-start % _ALIGN)
    return _MAGIC + struct.pack("<I", len(body)) + body


def decode_entry(buf: bytearray, model_id: str, image_key: str) -> Embedding:
    """Parse and verify one entry file's bytes; raise _Corrupt on anything unexpected."""
    if len(buf) < len(_MAGIC) + 4 or buf[: len(_MAGIC)] != _MAGIC:
        raise CorruptEntry("bad magic")
    (n,) = struct.unpack_from("<I", buf, len(_MAGIC))
    start = len(_MAGIC) + 4
    if n > _MAX_HEADER or start + n > len(buf):
        raise CorruptEntry("bad header length")
    try:
        header = json.loads(bytes(buf[start : start + n]))
    except ValueError as exc:
        raise CorruptEntry(f"bad header: {exc}") from None
    if isinstance(header, dict) and "arrays" in header:
        return _decode_dict(buf, start + n, header, model_id, image_key)
    try:
        shape = tuple(int(v) for v in header["shape"])
        dtype = np.dtype(header["dtype"])
        out_dtype = np.dtype(header["out_dtype"])
        nbytes = int(header["nbytes"])
        crc = int(header["crc32"])
        kind = header["kind"]
        original_size = tuple(int(v) for v in header["original_size"])
        input_size = tuple(int(v) for v in header["input_size"])
        stored_model, stored_key = header["model_id"], header["image_key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntry(f"bad header: {exc}") from None
    if stored_model != model_id or stored_key != image_key:
        raise CorruptEntry("key mismatch")
    if dtype.hasobject or any(d < 0 for d in shape) or nbytes != int(np.prod(shape)) * dtype.itemsize:
        raise CorruptEntry("shape and size disagree")
    offset = start + n
    if len(buf) - offset != nbytes:
        raise CorruptEntry(f"payload is {len(buf) - offset} bytes, expected {nbytes}")
    payload = memoryview(buf)[offset:]
    if zlib.crc32(payload) != crc:
        raise CorruptEntry("checksum mismatch")
    arr = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
    if out_dtype != dtype:
        arr = _cast(arr, out_dtype)  # the one copy: float16 -> float32
    features: Any = arr
    if kind == "torch":
        import torch

        features = torch.from_numpy(arr)
    return Embedding(features, original_size, input_size, model_id)  # type: ignore[arg-type]


def _decode_dict(buf: bytearray, offset: int, header: dict, model_id: str, image_key: str) -> Embedding:
    """The named-arrays entry (SAM 2.1) after its header; raise _Corrupt on anything unexpected."""
    try:
        kind = header["kind"]
        nbytes, crc = int(header["nbytes"]), int(header["crc32"])
        original_size = tuple(int(v) for v in header["original_size"])
        input_size = tuple(int(v) for v in header["input_size"])
        stored_model, stored_key = header["model_id"], header["image_key"]
        specs = [(str(a["name"]), tuple(int(v) for v in a["shape"]), np.dtype(a["dtype"]), np.dtype(a["out_dtype"]),
                  int(a["offset"]), int(a["nbytes"])) for a in header["arrays"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntry(f"bad header: {exc}") from None
    if stored_model != model_id or stored_key != image_key:
        raise CorruptEntry("key mismatch")
    if kind not in ("torch-dict", "numpy-dict"):
        raise CorruptEntry(f"unknown kind {kind!r}")
    if len(buf) - offset != nbytes:
        raise CorruptEntry(f"payload is {len(buf) - offset} bytes, expected {nbytes}")
    payload = memoryview(buf)[offset:]
    if zlib.crc32(payload) != crc:
        raise CorruptEntry("checksum mismatch")
    features: dict[str, Any] = {}
    for name, shape, dtype, out_dtype, start, size in specs:
        count = int(np.prod(shape))
        if dtype.hasobject or any(d < 0 for d in shape) or size != count * dtype.itemsize or start < 0 \
                or start + size > nbytes:
            raise CorruptEntry(f"array {name!r}: shape, size and offset disagree")
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=offset + start).reshape(shape)
        if out_dtype != dtype:
            arr = _cast(arr, out_dtype)
        if kind == "torch-dict":
            import torch

            arr = torch.from_numpy(arr)
        features[name] = arr
    return Embedding(features, original_size, input_size, model_id)  # type: ignore[arg-type]
