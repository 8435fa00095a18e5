"""core.common.atomic_files: a target is its old bytes or its complete new bytes, and no temporary file stays."""

from __future__ import annotations

import pytest

from floodlabel.core.common.atomic_files import atomic_writer, write_atomic


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    write_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_writer_replaces_only_on_a_clean_exit(tmp_path, durable):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_writer(target, durable=durable) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]

    with atomic_writer(target, durable=durable) as f:
        f.write(b"new ")
        f.write(b"bytes")
        assert target.read_bytes() == b"old"  # not replaced before the block ends
    assert target.read_bytes() == b"new bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_atomic_writer_with_a_prefix_names_its_temp_file(tmp_path):
    target = tmp_path / "out.json"
    with atomic_writer(target, prefix=".fl-tmp-") as f:
        names = [p.name for p in tmp_path.iterdir()]
        f.write(b"{}")
    assert len(names) == 1 and names[0].startswith(".fl-tmp-") and len(names[0]) == len(".fl-tmp-") + 12
    assert target.read_bytes() == b"{}"
