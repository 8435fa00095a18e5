"""core.segment.two_way_decoder's traced transformer and mask head: bitwise the eager network for any number of prompt
tokens and any grid, for SAM v1 and SAM 2.1, in both compute dtypes, sharing the decoder's parameters;
FLOODLABEL_TRACED_DECODER=0 keeps them eager."""

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
        decoder.network.mask_head(torch.randn(4096, 256), torch.randn(3, 256), 1)
    assert decoder.network._traced is None and decoder.network._heads == {(1, 3, False): None, (0, 1, False): None}


def test_a_failed_trace_falls_back_to_eager(monkeypatch):
    decoder = FastSamDecoder(tiny_sam(0))
    monkeypatch.setattr(torch.jit, "trace", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no tracer")))
    state, tokens = _state_and_tokens(decoder, 4)
    t = tokens(2)
    with torch.inference_mode():
        out = decoder.network.transformer(state, t)
        _same(out, decoder.network.eager_transformer(state, t))
        keys, mask_tokens = torch.randn(4096, 256), torch.randn(1, 256)
        assert torch.equal(decoder.network.mask_head(keys, mask_tokens, 0),
                           decoder.network.eager_mask_head(keys, mask_tokens, 0))
    assert decoder.network._traced is None and decoder.network._heads == {(0, 1, False): None, (1, 3, False): None}


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_traced_mask_head_is_the_eager_one_for_any_grid(dtype):
    sam = tiny_sam(0)
    net = FastSamDecoder(sam, dtype=dtype).network
    torch.manual_seed(6)
    with torch.inference_mode():
        for rows, cols, first, count in [(64, 64, 1, 3), (40, 64, 1, 3), (17, 9, 1, 3), (64, 23, 0, 1), (5, 64, 0, 1)]:
            keys, tokens = torch.randn(rows * cols, 256).to(dtype), torch.randn(count, 256)
            out = net.mask_head(keys, tokens, first, rows, cols)
            assert out.shape == (count, 4 * rows, 4 * cols)
            assert torch.equal(out, net.eager_mask_head(keys, tokens, first, rows, cols))
    assert set(net._heads) == {(1, 3, False), (0, 1, False)}  # one graph per token range, not per grid
    assert all(head is not None for head in net._heads.values())
    with torch.no_grad():
        sam.mask_decoder.output_hypernetworks_mlps[1].layers[0].weight.mul_(1.5)  # the graph shares the weights
    with torch.inference_mode():
        keys, tokens = torch.randn(64 * 64, 256).to(dtype), torch.randn(3, 256)
        assert torch.equal(net.mask_head(keys, tokens, 1), net.eager_mask_head(keys, tokens, 1))


@pytest.mark.skipif(importlib.util.find_spec("sam2") is None, reason="Meta's sam2 is not installed")
def test_sam2_traced_mask_head_with_its_high_resolution_maps_is_the_eager_one():
    from floodlabel.core.sam2.fast_decoder import FastSam2Decoder
    from tiny_sam2 import tiny_sam2

    net: TwoWayDecoder = FastSam2Decoder(tiny_sam2(0), dtype=torch.bfloat16).network
    torch.manual_seed(7)
    with torch.inference_mode():
        keys, tokens = torch.randn(4096, 256).to(torch.bfloat16), torch.randn(3, 256)
        add1 = torch.randn(4096, 4 * 64).to(torch.bfloat16)
        add2 = torch.randn(4096 * 4, 4 * 32).to(torch.bfloat16)
        out = net.mask_head(keys, tokens, 1, add1=add1, add2=add2)
        assert torch.equal(out, net.eager_mask_head(keys, tokens, 1, add1=add1, add2=add2))
    assert net._heads[(1, 3, True)] is not None
