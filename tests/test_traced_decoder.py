"""core.segment.two_way_decoder's traced transformer: bitwise the eager network for any number of prompt tokens,
for SAM v1 and SAM 2.1, in both compute dtypes, sharing the decoder's parameters; FLOODLABEL_TRACED_DECODER=0 keeps
it eager."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from floodlabel.core.sam.fast_decoder import FastSamDecoder
from floodlabel.core.segment.two_way_decoder import TwoWayDecoder
from tiny_sam import tiny_sam


def _state_and_tokens(decoder, seed: int):
    torch.manual_seed(seed)
    with torch.inference_mode():
        state = decoder.prepare(torch.randn(1, 256, 64, 64) * 0.5)
    return state, lambda n: torch.cat([decoder._out_tokens, torch.randn(n, 256)], 0)


def _same(a, b) -> None:
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert torch.equal(x, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sam_v1_traced_transformer_is_the_eager_one(dtype):
    decoder = FastSamDecoder(tiny_sam(0), dtype=dtype)
    net = decoder.network
    state, tokens = _state_and_tokens(decoder, 1)
    with torch.inference_mode():
        for n in (2, 1, 3, 7):  # a point and its pad, a box, points and a box, many points
            t = tokens(n)
            _same(net.transformer(state, t), net.eager_transformer(state, t))
    assert net._traced is not None  # it did trace (not the eager fallback)


def test_the_traced_graph_shares_the_decoders_parameters():
    sam = tiny_sam(0)
    decoder = FastSamDecoder(sam)
    net = decoder.network
    state, tokens = _state_and_tokens(decoder, 2)
    t = tokens(2)
    with torch.inference_mode():
        before = net.transformer(state, t)
    with torch.no_grad():
        sam.mask_decoder.transformer.layers[1].mlp.lin1.weight.mul_(1.5)  # e.g. fine-tuned weights loaded in place
    with torch.inference_mode():
        after = net.transformer(state, t)
        _same(after, net.eager_transformer(state, t))
    assert not torch.equal(before[0], after[0])


def test_tracing_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_TRACED_DECODER", "0")
    decoder = FastSamDecoder(tiny_sam(0))
    state, tokens = _state_and_tokens(decoder, 3)
    with torch.inference_mode():
        decoder.network.transformer(state, tokens(2))
    assert decoder.network._traced is None


def test_a_failed_trace_falls_back_to_eager(monkeypatch):
    decoder = FastSamDecoder(tiny_sam(0))
    monkeypatch.setattr(torch.jit, "trace", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no tracer")))
    state, tokens = _state_and_tokens(decoder, 4)
    t = tokens(2)
    with torch.inference_mode():
        out = decoder.network.transformer(state, t)
        _same(out, decoder.network.eager_transformer(state, t))
    assert decoder.network._traced is None


@pytest.mark.skipif(importlib.util.find_spec("sam2") is None, reason="Meta's sam2 is not installed")
def test_sam2_traced_transformer_is_the_eager_one():
    from floodlabel.core.sam2.fast_decoder import FastSam2Decoder
    from tiny_sam2 import tiny_sam2

    decoder = FastSam2Decoder(tiny_sam2(0), dtype=torch.bfloat16)
    net: TwoWayDecoder = decoder.network
    torch.manual_seed(5)
    with torch.inference_mode():
        state = net.image_state(torch.randn(1, 256, 64, 64) * 0.5)
        for n in (2, 4):
            t = torch.cat([decoder._out_tokens, torch.randn(n, 256)], 0)
            _same(net.transformer(state, t), net.eager_transformer(state, t))
    assert net._traced is not None
