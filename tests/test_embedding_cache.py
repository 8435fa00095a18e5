"""Embedding cache: memory LRU, disk round-trip, corruption, eviction, processes sharing a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from floodlabel.core.segment import embedding_cache as ec
from floodlabel.core.common.hashing import image_key
from floodlabel.core.segment.embedding_cache import EmbeddingCache
from floodlabel.core.segment.segmenter import Embedding

REPO = Path(__file__).resolve().parents[1]
SAM_SHAPE = (1, 256, 64, 64)
# float16 round-to-nearest: relative error <= 2**-11 for normal numbers, absolute <= 2**-25 for subnormals.
F16_RTOL, F16_ATOL = 2.0**-11, 2.0**-24


def sam_embedding(seed: int = 0, model_id: str = "vit_b-abc") -> Embedding:
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(SAM_SHAPE, generator=g) * 0.5
    return Embedding(feats, (3000, 4000), (768, 1024), model_id)


def small_embedding(value: float, model_id: str = "m") -> Embedding:
    return Embedding(np.full((1, 4, 8, 8), value, np.float32), (10, 20), (512, 1024), model_id)


def entry_files(d: Path) -> list[Path]:
    return sorted(d.glob("*" + ec.ENTRY_SUFFIX))


def temp_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if ec.is_temp_name(p.name))


# ---- image_key --------------------------------------------------------------------------------


def test_image_key_depends_on_content_shape_and_dtype():
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    k = image_key(img)
    assert k == image_key(img.copy()) and len(k) == 32
    changed = img.copy()
    changed[5, 5, 1] ^= 1
    assert image_key(changed) != k
    assert image_key(img.reshape(40, 30, 3)) != k  # same bytes, other shape
    assert image_key(img.view(np.int8)) != k  # same bytes, other dtype
    assert image_key(np.asfortranarray(img)) == k  # memory layout does not matter


# ---- memory level -----------------------------------------------------------------------------


def test_hit_miss_and_stats(tmp_path):
    cache = EmbeddingCache(tmp_path)
    assert cache.get("m", "k") is None
    assert not cache.contains("m", "k")
    emb = small_embedding(1.0)
    cache.put("m", "k", emb)
    assert cache.contains("m", "k")
    assert cache.get("m", "k") is emb
    s = cache.stats
    assert (s.memory_hits, s.disk_hits, s.misses) == (1, 0, 1)


def test_memory_lru_evicts_least_recently_used(tmp_path):
    cache = EmbeddingCache(tmp_path, max_disk_bytes=0, memory_items=2)  # disk keeps nothing
    a, b, c = small_embedding(1), small_embedding(2), small_embedding(3)
    cache.put("m", "a", a)
    cache.put("m", "b", b)
    assert entry_files(tmp_path) == []
    assert cache.get("m", "a") is a  # a is now the most recent; b the least
    cache.put("m", "c", c)
    assert cache.get("m", "b") is None
    assert cache.get("m", "a") is a
    assert cache.get("m", "c") is c
    cache.put("m", "b", b)  # evicts a (c was used after a)
    assert cache.get("m", "a") is None


def mib_embedding(mib: float, value: float = 0.0) -> Embedding:
    """An embedding whose features hold `mib` MiB (float32)."""
    return Embedding(np.full(int(mib * 2**18), value, np.float32), (10, 20), (1024, 1024), "m")


def test_memory_level_is_bounded_by_bytes_not_items(tmp_path):
    mib = 2**20
    cache = EmbeddingCache(tmp_path, max_disk_bytes=0, memory_bytes=int(3.5 * mib))  # disk keeps nothing
    small = [Embedding(np.zeros(16, np.float32), (1, 1), (1, 1), "m") for _ in range(20)]
    for i, e in enumerate(small):  # 20 tiny entries: far under the bytes bound, so no count bound drops them
        cache.put("m", f"s{i}", e)
    assert all(cache.get("m", f"s{i}") is e for i, e in enumerate(small))
    big = [mib_embedding(1, i) for i in range(5)]
    for i, e in enumerate(big):
        cache.put("m", f"b{i}", e)
    assert [cache.get("m", f"b{i}") is not None for i in range(5)] == [False, False, True, True, True]
    assert 3 * mib <= cache.memory_held_bytes <= 3.5 * mib


def test_state_added_to_extra_after_the_put_is_counted_at_the_next_insert(tmp_path):
    mib = 2**20
    cache = EmbeddingCache(tmp_path, max_disk_bytes=0, memory_bytes=int(4.5 * mib))
    a, b = mib_embedding(1, 1), mib_embedding(1, 2)
    cache.put("m", "a", a)
    cache.put("m", "b", b)
    a.extra["decoder-state"] = {"k": torch.zeros(2**18), "v": np.zeros(2**18, np.float32)}  # +2 MiB, as predict adds
    assert cache.memory_held_bytes == 4 * mib  # a: 1 MiB features + 2 MiB state; b: 1 MiB
    cache.put("m", "c", mib_embedding(1, 3))  # 5 MiB now: the least recently used (a, with its state) goes
    assert cache.get("m", "a") is None and cache.get("m", "b") is b and cache.get("m", "c") is not None


def test_the_newest_entry_stays_even_alone_over_the_bound_and_zero_disables(tmp_path):
    cache = EmbeddingCache(tmp_path, max_disk_bytes=0, memory_bytes=2**20)
    first, huge = mib_embedding(0.5), mib_embedding(3)
    cache.put("m", "first", first)
    cache.put("m", "huge", huge)
    assert cache.get("m", "huge") is huge and cache.get("m", "first") is None
    off = EmbeddingCache(tmp_path / "off", max_disk_bytes=0, memory_bytes=0)
    off.put("m", "k", first)
    assert off.get("m", "k") is None and off.memory_held_bytes == 0


def test_forget_drops_one_entry_from_memory_and_disk(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("m", "a", small_embedding(1))
    cache.put("m", "b", small_embedding(2))
    cache.forget("m", "a")
    cache.forget("m", "never-stored")
    assert not cache.contains("m", "a") and EmbeddingCache(tmp_path).get("m", "a") is None
    assert cache.contains("m", "b") and len(entry_files(tmp_path)) == 1


def test_held_bytes_counts_each_buffer_once_and_never_a_models_weights():
    from dataclasses import dataclass

    from floodlabel.core.segment.held_bytes import held_bytes

    @dataclass
    class State:
        keys: torch.Tensor
        view: torch.Tensor
        model: torch.nn.Module

    t = torch.zeros(1024, 256)  # 1 MiB
    arr = np.zeros((512, 256), np.float32)  # 0.5 MiB
    emb = Embedding({"a": t, "b": torch.from_numpy(arr), "c": arr}, (1, 1), (1, 1), "m")
    emb.extra["s"] = State(t[:10], t.t(), torch.nn.Linear(4096, 4096))  # views of t; 64 MiB of weights not counted
    emb.extra["list"] = [np.zeros(1024, np.uint8), 3, "text"]
    assert held_bytes(emb) == 2**20 + 2**19 + 1024


# ---- disk level -------------------------------------------------------------------------------


def test_disk_round_trip_after_new_cache_object(tmp_path):
    emb = sam_embedding()
    EmbeddingCache(tmp_path).put("vit_b-abc", "img1", emb)
    (path,) = entry_files(tmp_path)
    assert 2 * 1024**2 < path.stat().st_size < 2 * 1024**2 + 1024  # float16 payload + small header

    cache = EmbeddingCache(tmp_path)
    got = cache.get("vit_b-abc", "img1")
    assert isinstance(got.features, torch.Tensor)
    assert got.features.dtype == torch.float32 and tuple(got.features.shape) == SAM_SHAPE
    assert got.features.is_contiguous() and got.features.numpy().flags.writeable
    torch.testing.assert_close(got.features, emb.features, rtol=F16_RTOL, atol=F16_ATOL)
    assert got.features.ne(emb.features).any()  # it really went through float16
    assert got.original_size == (3000, 4000) and got.input_size == (768, 1024)
    assert got.model_id == "vit_b-abc" and got.extra == {}
    assert cache.get("vit_b-abc", "img1") is got  # second lookup comes from memory
    s = cache.stats
    assert (s.memory_hits, s.disk_hits, s.misses) == (1, 1, 0)


def test_numpy_features_round_trip_as_numpy(tmp_path):
    f32 = np.random.default_rng(1).standard_normal((1, 8, 16, 16)).astype(np.float32)
    rgb = np.random.default_rng(2).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    big = np.array([1e6, -3.0, 0.5], np.float32)  # beyond float16's range: stored as float32
    writer = EmbeddingCache(tmp_path)
    writer.put("sam", "a", Embedding(f32, (5, 6), (7, 8), "sam"))
    writer.put("classic", "a", Embedding(rgb, (12, 9), (12, 9), "classic"))
    writer.put("sam", "big", Embedding(big, (1, 1), (1, 1), "sam"))

    reader = EmbeddingCache(tmp_path)
    got = reader.get("sam", "a").features
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_allclose(got, f32, rtol=F16_RTOL, atol=F16_ATOL)
    got_rgb = reader.get("classic", "a").features
    assert got_rgb.dtype == np.uint8 and np.array_equal(got_rgb, rgb)
    np.testing.assert_array_equal(reader.get("sam", "big").features, big)


def _write_garbage(path: Path, kind: str) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) - 1000])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif kind == "zero":
        path.write_bytes(b"")
    elif kind == "magic":
        path.write_bytes(b"NOTMAGIC" + data[8:])
    elif kind == "header":  # header JSON cut short, length field unchanged
        path.write_bytes(data[:20] + b"}" * 40 + data[60:])
    elif kind == "payload":  # one flipped bit in the data: only the checksum notices
        b = bytearray(data)
        b[-12345] ^= 0x10
        path.write_bytes(bytes(b))
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "random", "zero", "magic", "header", "payload"])
def test_corrupt_entry_is_a_miss_and_removed(tmp_path, kind, caplog):
    EmbeddingCache(tmp_path).put("m", "k", sam_embedding())
    (path,) = entry_files(tmp_path)
    _write_garbage(path, kind)
    cache = EmbeddingCache(tmp_path)
    assert cache.get("m", "k") is None
    assert not path.exists()
    assert cache.stats.misses == 1 and cache.stats.disk_hits == 0
    assert "dropping bad entry" in caplog.text


def test_different_models_never_share_entries(tmp_path):
    cache = EmbeddingCache(tmp_path, memory_items=0)
    cache.put("vit_b", "img", small_embedding(1.0, "vit_b"))
    cache.put("vit_l", "img", small_embedding(2.0, "vit_l"))
    assert len(entry_files(tmp_path)) == 2
    assert float(cache.get("vit_b", "img").features.max()) == 1.0
    assert float(cache.get("vit_l", "img").features.max()) == 2.0
    assert cache.get("vit_h", "img") is None

    # A file under another model's name (e.g. a hash collision or a copied file) is rejected.
    os.replace(cache.path_for("vit_b", "img"), cache.path_for("vit_h", "img"))
    assert cache.get("vit_h", "img") is None
    assert not cache.path_for("vit_h", "img").exists()


def test_disk_is_size_bounded_least_recently_used_first(tmp_path):
    emb = small_embedding(1.0)
    one = EmbeddingCache(tmp_path)
    one.put("m", "a", emb)
    entry = entry_files(tmp_path)[0].stat().st_size
    cache = EmbeddingCache(tmp_path, max_disk_bytes=int(2.5 * entry), memory_items=0)
    cache.put("m", "b", emb)
    os.utime(cache.path_for("m", "a"), (1000, 1000))
    os.utime(cache.path_for("m", "b"), (2000, 2000))
    assert cache.get("m", "a") is not None  # a disk hit touches a: b is now the oldest
    cache.put("m", "c", emb)
    assert not cache.path_for("m", "b").exists()
    assert cache.path_for("m", "a").exists() and cache.path_for("m", "c").exists()
    assert sum(p.stat().st_size for p in entry_files(tmp_path)) <= cache.max_disk_bytes


def test_clear_removes_memory_and_files(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("m", "a", small_embedding(1.0))
    (tmp_path / ".x.1.ab.tmp").write_bytes(b"partial")  # an older version's temp name
    (tmp_path / f"{ec.TEMP_PREFIX}0123456789ab").write_bytes(b"partial")
    assert len(temp_files(tmp_path)) == 2
    cache.clear()
    assert entry_files(tmp_path) == [] and temp_files(tmp_path) == []
    assert cache.get("m", "a") is None


def test_default_directory_is_embeddings_dir(isolated_cache):
    cache = EmbeddingCache()
    assert cache.directory == isolated_cache / "embeddings"
    cache.put("m", "a", small_embedding(1.0))
    assert len(entry_files(cache.directory)) == 1


# ---- get_or_compute ---------------------------------------------------------------------------


def test_get_or_compute_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return small_embedding(4.0)

    cache = EmbeddingCache(tmp_path)
    first = cache.get_or_compute("m", "k", compute)
    assert cache.get_or_compute("m", "k", compute) is first
    assert EmbeddingCache(tmp_path).get_or_compute("m", "k", compute).features.max() == 4.0
    assert len(calls) == 1


def test_get_or_compute_error_caches_nothing(tmp_path):
    cache = EmbeddingCache(tmp_path)

    def boom():
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        cache.get_or_compute("m", "k", boom)
    assert not cache.contains("m", "k")
    assert cache._key_locks == {}


def test_get_or_compute_threads_share_one_computation(tmp_path):
    cache = EmbeddingCache(tmp_path)
    calls = []
    start = threading.Barrier(4)

    def compute():
        calls.append(1)
        time.sleep(0.2)
        return small_embedding(5.0)

    results = []

    def worker():
        start.wait()
        results.append(cache.get_or_compute("m", "k", compute))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4
    assert all(r is results[0] for r in results)
    assert cache._key_locks == {}  # per-key locks do not pile up


# ---- crashes and several processes ------------------------------------------------------------


def test_failed_write_leaves_no_entry_and_no_temp(tmp_path, monkeypatch, caplog):
    cache = EmbeddingCache(tmp_path)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ec.os, "replace", broken_replace)
    emb = small_embedding(1.0)
    cache.put("m", "k", emb)  # a disk error is logged, not raised
    assert "could not write" in caplog.text
    assert cache.get("m", "k") is emb  # still served from memory
    assert entry_files(tmp_path) == [] and temp_files(tmp_path) == []
    assert EmbeddingCache(tmp_path).get("m", "k") is None


def _run_child(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


def test_process_killed_mid_write_leaves_no_entry_and_stale_temp_is_cleaned(tmp_path):
    crash = """
        import os, sys
        import numpy as np
        from floodlabel.core.segment import embedding_cache as ec
        from floodlabel.core.segment.segmenter import Embedding
        os.replace = lambda src, dst: os._exit(3)  # die between writing the temp file and renaming it
        cache = ec.EmbeddingCache(sys.argv[1])
        cache.put("m", "k", Embedding(np.ones((1, 4, 8, 8), np.float32), (1, 1), (1, 1), "m"))
    """
    proc = _run_child(crash, str(tmp_path))
    assert proc.returncode == 3, proc.stderr
    assert entry_files(tmp_path) == []
    (left,) = temp_files(tmp_path)
    assert left.name.startswith(ec.TEMP_PREFIX) and left.stat().st_size > 0

    cache = EmbeddingCache(tmp_path)
    assert cache.get("m", "k") is None
    cache.evict()
    assert left.exists()  # young: may belong to a writer still at work
    old = time.time() - ec.STALE_TEMP_SECONDS - 60
    os.utime(left, (old, old))
    cache.put("m", "other", small_embedding(1.0))  # eviction after put cleans stale temps
    assert temp_files(tmp_path) == []
    assert [p.name for p in entry_files(tmp_path)] == [cache.path_for("m", "other").name]


CONCURRENT_WORKER = """
    import json, logging, random, sys, time
    import numpy as np
    from floodlabel.core.segment.embedding_cache import EmbeddingCache
    from floodlabel.core.segment.segmenter import Embedding

    class Count(logging.Handler):
        bad = 0
        def emit(self, record):
            if "bad entry" in record.getMessage():
                Count.bad += 1

    logging.getLogger("floodlabel").addHandler(Count())
    folder, seed, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(seed)
    base = np.arange(1 * 16 * 64 * 64, dtype=np.float32).reshape(1, 16, 64, 64) % 1000

    def expected(k):
        return base + k  # integers < 2048: exact in float16, so any mix-up shows

    entry = 16 * 64 * 64 * 2 + 256
    cache = EmbeddingCache(folder, max_disk_bytes=4 * entry, memory_items=0)
    hits = misses = garbage = puts = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        k = rng.randrange(8)
        if rng.random() < 0.4:
            cache.put("m", f"img{k}", Embedding(expected(k), (k, k + 1), (2 * k, 3), "m"))
            puts += 1
        else:
            got = cache.get("m", f"img{k}")
            if got is None:
                misses += 1
            elif (np.array_equal(got.features, expected(k)) and got.original_size == (k, k + 1)
                  and got.input_size == (2 * k, 3) and got.model_id == "m"):
                hits += 1
            else:
                garbage += 1
    print(json.dumps(dict(hits=hits, misses=misses, garbage=garbage, puts=puts, bad=Count.bad)))
"""


def test_processes_sharing_a_folder_never_read_garbage(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CONCURRENT_WORKER), str(tmp_path), str(i), "1.5"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(3)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    total = {k: sum(r[k] for r in results) for k in results[0]}
    assert total["garbage"] == 0 and total["bad"] == 0, total
    assert total["hits"] > 0 and total["puts"] > 0 and total["misses"] > 0, total
    assert len(entry_files(tmp_path)) <= 4
    assert temp_files(tmp_path) == []
