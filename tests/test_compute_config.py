"""Compute configuration: hardware defaults and environment overrides."""

from __future__ import annotations

import torch

from floodlabel.core.compute_config import default_compute_config, native_bf16


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
