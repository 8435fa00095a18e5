"""Compute configuration: hardware defaults and environment overrides."""

from __future__ import annotations

import pytest
import torch

from floodlabel.core.segment.compute_config import ComputeConfigError, default_compute_config, native_bf16


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DEVICE", "cpu")
    monkeypatch.setenv("FLOODLABEL_PRECISION", "fp32")
    cfg = default_compute_config()
    assert (cfg.device, cfg.encoder_dtype, cfg.decoder_dtype) == ("cpu", torch.float32, torch.float32)
    assert cfg.describe() == "cpu, encoder fp32, decoder fp32"
    monkeypatch.setenv("FLOODLABEL_PRECISION", "bf16")
    cfg = default_compute_config()
    assert (cfg.encoder_dtype, cfg.decoder_dtype) == (torch.bfloat16, torch.bfloat16)


def test_default_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DEVICE", "cpu")
    monkeypatch.delenv("FLOODLABEL_PRECISION", raising=False)
    expected = torch.bfloat16 if native_bf16("cpu") else torch.float32
    assert default_compute_config().encoder_dtype == expected


def test_fp32_autocast_is_a_no_op(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_PRECISION", "fp32")
    monkeypatch.setenv("FLOODLABEL_DEVICE", "cpu")
    with default_compute_config().encoder_autocast():
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("name, value, accepted", [
    ("FLOODLABEL_PRECISION", "fp16", "use fp32 or bf16"),
    ("FLOODLABEL_PRECISION", "float32", "use fp32 or bf16"),
    ("FLOODLABEL_DEVICE", "gpu", "use cpu, cuda or cuda:N"),
    ("FLOODLABEL_DEVICE", "cuda:x", "use cpu, cuda or cuda:N"),
])
def test_invalid_values_name_the_accepted_ones(monkeypatch, name, value, accepted):
    monkeypatch.setenv("FLOODLABEL_DEVICE", "cpu")
    monkeypatch.setenv(name, value)
    with pytest.raises(ComputeConfigError) as info:
        default_compute_config()
    assert f"{name}={value!r} is not accepted" in str(info.value) and accepted in str(info.value)


def test_case_and_spaces_are_ignored(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DEVICE", " CPU ")
    monkeypatch.setenv("FLOODLABEL_PRECISION", "FP32")
    cfg = default_compute_config()
    assert (cfg.device, cfg.encoder_dtype) == ("cpu", torch.float32)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_an_error(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DEVICE", "cuda")
    with pytest.raises(ComputeConfigError, match="torch sees 0 CUDA GPU"):
        default_compute_config()


def test_eval_exits_2_with_one_line(monkeypatch, tmp_path, capsys):
    from floodlabel.cli import main

    monkeypatch.setenv("FLOODLABEL_PRECISION", "half")
    assert main(["eval", str(tmp_path), "--model", "classic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FLOODLABEL_PRECISION='half' is not accepted: use fp32 or bf16" in err


def test_threads_here_is_per_thread():
    """The decode thread's torch thread count changes only its own (OpenMP keeps it per thread)."""
    import threading

    import torch

    from floodlabel.core.segment.compute_config import PROCESS_THREADS, threads_here

    seen = {}

    def worker():
        threads_here(1)
        seen["one"] = torch.get_num_threads()
        threads_here(None)
        seen["back"] = torch.get_num_threads()

    before = torch.get_num_threads()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"one": 1, "back": PROCESS_THREADS} and torch.get_num_threads() == before
