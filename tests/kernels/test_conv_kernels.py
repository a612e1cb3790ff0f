"""The numba conv kernels against the convolutions' definitions, over a grid of configurations.

Grid: odd, even and non-square sizes; kernel 1/3/5; stride 1/2/3; padding 0/1/2;
every legal output_padding for the transposed path; batch 1 and 7; float32 and
float64; both the GEMM path and the direct path. Then the same kernels at one
thread and at two and three (in subprocesses that force those pool sizes), with batch sizes
that do not split evenly.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numpyvae.kernels.conv as conv_api
from numpyvae.kernels import (
    conv2d_backward,
    conv2d_forward,
    conv2d_forward_and_grad_weight,
    conv2d_grad_input,
    conv2d_grad_weight,
    conv_output_size,
)
from tests.kernels.two_threads import run_with_two_threads
from tests.nn.conv_reference import (
    conv2d_definition,
    conv2d_grad_definition,
    conv_transpose2d_definition,
)

DTYPES = [np.float32, np.float64]
# relative to the largest |reference| entry: a race or a 1% error is far above these
TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
METHODS = ["gemm", "direct"]
CHANNELS = [(1, 4), (3, 1), (3, 5), (2, 3), (4, 2)]  # (C, F): thin and regular, cycled


def assert_close(got: np.ndarray, ref: np.ndarray, dtype, what: str) -> None:
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    err = float(np.max(np.abs(got.astype(np.float64) - ref))) / scale
    assert err <= TOL[np.dtype(dtype)], f"{what}: relative error {err:.3g}"


def _conv_configs() -> list[tuple]:
    out = []
    sizes = [(6, 6), (5, 7), (8, 5)]
    for (H, W), K, s, p, N in itertools.product(sizes, (1, 3, 5), (1, 2, 3), (0, 1, 2), (1, 7)):
        if H + 2 * p >= K and W + 2 * p >= K:
            C, F = CHANNELS[len(out) % len(CHANNELS)]
            out.append((N, C, F, H, W, K, s, p))
    return out


def _transpose_configs() -> list[tuple]:
    out = []
    sizes = [(3, 3), (4, 2)]
    for (H, W), K, s, p, N in itertools.product(sizes, (1, 3, 5), (1, 2, 3), (0, 1, 2), (1, 7)):
        for op in range(s):  # output_padding is legal iff it is smaller than the stride
            if (min(H, W) - 1) * s - 2 * p + K + op >= 1:
                C_in, C_out = CHANNELS[len(out) % len(CHANNELS)]
                out.append((N, C_in, C_out, H, W, K, s, p, op))
    return out


CONV_CONFIGS = _conv_configs()
TRANSPOSE_CONFIGS = _transpose_configs()
N_CONFIGURATIONS = (len(CONV_CONFIGS) + len(TRANSPOSE_CONFIGS)) * len(DTYPES)


def _ids(cfg: tuple) -> str:
    return "-".join(map(str, cfg))


@pytest.fixture
def three_samples_per_chunk(monkeypatch):
    """Make the GEMM path cut the batch into chunks of 3 samples (7 = 3 + 3 + 1).

    At its default size a chunk would hold every test-sized batch whole, and
    the code that splits a batch, including a short last chunk, would go
    untested. Returns a function to call with the conv's (C, K, Ho·Wo, dtype).
    """
    monkeypatch.setattr(conv_api, "_GRAD_WEIGHT_ROWS", 1)

    def set_for(C: int, K: int, L: int, dtype) -> None:
        monkeypatch.setattr(conv_api, "_CHUNK_BYTES", 3 * L * K * K * C * np.dtype(dtype).itemsize)
        monkeypatch.setattr(conv_api, "_PHASE_CHUNK_BYTES", conv_api._CHUNK_BYTES)

    return set_for


# ----------------------------------------------------------------------------
# The definitions vouch for each other; the kernels are adjoint too
# ----------------------------------------------------------------------------
# (N, C, F, H, W, K, s, p); (H + 2p − K) mod s is the same for W, and is 1 in the last two
ADJOINT_CASES = [(2, 2, 3, 5, 7, 3, 2, 1), (1, 3, 1, 6, 5, 5, 1, 2), (1, 1, 2, 4, 7, 1, 3, 2),
                 (2, 3, 2, 6, 8, 3, 2, 0)]


@pytest.mark.parametrize("cfg", ADJOINT_CASES, ids=_ids)
def test_definitions_are_adjoint(cfg):
    """<conv(x, w), dy> = <x, dx> = <w, dw>, and dx is the transposed conv of dy.

    Three loops written independently (the conv, its backward, the transposed conv from its
    own definition) must agree: the conv is linear in x and in w, and ConvTranspose2d with
    output_padding = (H + 2p − K) mod s maps dy back to x's size.
    """
    N, C, F, H, W, K, s, p = cfg
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, K, K))
    b = rng.standard_normal(F)
    y = conv2d_definition(x, w, b, s, p)
    dy = rng.standard_normal(y.shape)
    inner = np.sum((y - b[None, :, None, None]) * dy)
    dx, dw, db = conv2d_grad_definition(dy, x, w, s, p)
    assert np.isclose(np.sum(x * dx), inner, rtol=1e-12, atol=1e-12)
    assert np.isclose(np.sum(w * dw), inner, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)))
    dx_t = conv_transpose2d_definition(dy, w, None, s, p, (H + 2 * p - K) % s)
    assert dx_t.shape == x.shape
    np.testing.assert_allclose(dx_t, dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cfg", ADJOINT_CASES, ids=_ids)
def test_kernels_are_adjoint(cfg, method):
    """<conv2d_forward(x), dy> = <x, conv2d_grad_input(dy)> = <w, conv2d_grad_weight(dy, x)>."""
    N, C, F, H, W, K, s, p = cfg
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, K, K))
    y = conv2d_forward(x, w, None, s, p, method=method)
    dy = rng.standard_normal(y.shape)
    inner = np.sum(y * dy)
    dx = conv2d_grad_input(dy, w, (H, W), s, p, method=method)
    dw, _ = conv2d_grad_weight(dy, x, K, s, p, method=method)
    assert np.isclose(np.sum(x * dx), inner, rtol=1e-12, atol=1e-12)
    assert np.isclose(np.sum(w * dw), inner, rtol=1e-12, atol=1e-12)


def _random_case(cfg: tuple, dtype: type, rng: np.random.Generator) -> tuple:
    """x, w, b and dy of a configuration, drawn from ``rng`` in that order, and the
    definitions' y, dx, dw and db for them (float64)."""
    N, C, F, H, W, K, s, p = cfg
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, K, K)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Ho, Wo = conv_output_size(H, K, s, p), conv_output_size(W, K, s, p)
    dy = rng.standard_normal((N, F, Ho, Wo)).astype(dtype)
    return (x, w, b, dy, conv2d_definition(x, w, b, s, p)) + conv2d_grad_definition(dy, x, w,
                                                                                     s, p)


# ----------------------------------------------------------------------------
# Kernels vs the definitions over the grid
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=_ids)
def test_conv_kernels_match_reference(cfg, dtype, three_samples_per_chunk):
    N, C, F, H, W, K, s, p = cfg
    three_samples_per_chunk(C, K, conv_output_size(H, K, s, p) * conv_output_size(W, K, s, p),
                            dtype)
    x, w, b, dy, y_ref, dx_ref, dw_ref, db_ref = _random_case(
        cfg, dtype, np.random.default_rng(abs(hash(cfg)) % 2**32))
    for method in METHODS:
        tag = f"{method} {np.dtype(dtype)}"
        assert_close(conv2d_forward(x, w, b, s, p, method=method), y_ref, dtype, f"forward {tag}")
        assert_close(conv2d_forward(x, w, None, s, p, method=method),
                     y_ref - b.astype(np.float64)[None, :, None, None], dtype, f"no-bias {tag}")
        assert_close(conv2d_grad_input(dy, w, (H, W), s, p, method=method), dx_ref, dtype,
                     f"grad_input {tag}")
        dw, db = conv2d_grad_weight(dy, x, K, s, p, method=method)
        assert_close(dw, dw_ref, dtype, f"grad_weight {tag}")
        assert_close(db, db_ref, dtype, f"grad_bias {tag}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", TRANSPOSE_CONFIGS, ids=_ids)
def test_transposed_path_matches_reference(cfg, dtype, three_samples_per_chunk):
    """ConvTranspose2d = conv2d_grad_input forward, conv2d_forward backward, swapped grad_weight."""
    N, C_in, C_out, H, W, K, s, p, op = cfg
    three_samples_per_chunk(C_out, K, H * W, dtype)  # the conv view: C_out channels in, H×W out
    rng = np.random.default_rng(abs(hash(cfg)) % 2**32)
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    w = rng.standard_normal((C_in, C_out, K, K)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    y_ref = conv_transpose2d_definition(x, w, b, s, p, op)
    Hout, Wout = y_ref.shape[2:]
    g = rng.standard_normal(y_ref.shape).astype(dtype)
    dx_ref = conv2d_definition(g, w, None, s, p)
    _, dw_ref, _ = conv2d_grad_definition(x, g, w, s, p)  # the conv's dW with x and dY swapped
    for method in METHODS:
        tag = f"{method} {np.dtype(dtype)} op={op}"
        y = conv2d_grad_input(x, w, (Hout, Wout), s, p, bias=b, method=method)
        assert_close(y, y_ref, dtype, f"transposed forward {tag}")
        assert_close(conv2d_forward(g, w, None, s, p, method=method), dx_ref, dtype,
                     f"transposed grad_input {tag}")
        dw, _ = conv2d_grad_weight(x, g, K, s, p, method=method)
        assert_close(dw, dw_ref, dtype, f"transposed grad_weight {tag}")
        dx, dw = conv2d_forward_and_grad_weight(g, w, x, s, p, method=method)
        assert_close(dx, dx_ref, dtype, f"fused transposed grad_input {tag}")
        assert_close(dw, dw_ref, dtype, f"fused transposed grad_weight {tag}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=_ids)
def test_grad_weight_by_taps_matches_reference(cfg, dtype, monkeypatch):
    """The weight gradient by tap on x's phases (taken by default only where its grid wastes
    little, e.g. dec.convT3), and the forward beside it, forced on every configuration, in
    chunks of 3 samples (7 = 3 + 3 + 1: a short last chunk, whose taps read past its grid)."""
    N, C, F, H, W, K, s, p = cfg
    tag = np.dtype(dtype)
    Ho, Wo = conv_output_size(H, K, s, p), conv_output_size(W, K, s, p)
    monkeypatch.setattr(conv_api, "_TAPS_MAX_GRID", float("inf"))
    monkeypatch.setattr(conv_api, "_TAPS_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_api, "_CHUNK_BYTES", 3 * conv_api._taps_sample_bytes(
        C, F, Ho, Wo, K, s, np.dtype(dtype).itemsize))
    rng = np.random.default_rng(abs(hash(cfg)) % 2**32)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, K, K)).astype(dtype)
    dy = rng.standard_normal((N, F, Ho, Wo)).astype(dtype)
    _, dw_ref, db_ref = conv2d_grad_definition(dy, x, w, s, p)
    dw, db = conv2d_grad_weight(dy, x, K, s, p, method="gemm")
    assert_close(dw, dw_ref, dtype, f"grad_weight by taps {np.dtype(dtype)}")
    assert_close(db, db_ref, dtype, f"grad_bias {np.dtype(dtype)}")
    # the transposed conv's backward: the forward from the same phases, beside dw
    y, dw = conv2d_forward_and_grad_weight(x, w, dy, s, p, method="gemm")
    assert_close(y, conv2d_definition(x, w, None, s, p), dtype, f"fused forward by taps {tag}")
    assert_close(dw, dw_ref, dtype, f"fused grad_weight by taps {tag}")


def test_chunked_fixture_cuts_every_gemm_path_into_three_samples(three_samples_per_chunk,
                                                                monkeypatch):
    """The grid tests' chunks of 3 reach each GEMM driver, so a short last chunk is run: the
    forward's, the weight gradient's and the input gradient by phase (its own budget)."""
    import numpyvae.kernels.gemm as gemm

    seen = {}
    for name in ("forward", "grad_weight", "grad_input"):
        real = getattr(gemm, name)

        def spy(*args, _name=name, _real=real):
            seen[_name] = next(a for a in args if hasattr(a, "samples_per_chunk"))
            return _real(*args)
        monkeypatch.setattr(gemm, name, spy)
    N, C, F, H, K, s, p = 7, 3, 2, 9, 3, 2, 1
    Ho = conv_output_size(H, K, s, p)
    three_samples_per_chunk(C, K, Ho * Ho, np.float64)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((N, C, H, H)), rng.standard_normal((F, C, K, K))
    dy = rng.standard_normal((N, F, Ho, Ho))
    conv2d_forward(x, w, None, s, p, method="gemm")
    conv2d_grad_weight(dy, x, K, s, p, method="gemm")
    conv2d_grad_input(dy, w, (H, H), s, p, method="gemm")
    assert {k: g.samples_per_chunk for k, g in seen.items()} == {
        "forward": 3, "grad_weight": 3, "grad_input": 3}


def test_grad_weight_by_taps_is_taken_for_dec_convT3(monkeypatch):
    """The tap path is the default where its grid is small beside the output (dec.convT3's
    weight gradient: 15 × 15 against 14 × 14), not for enc.conv3's 4 × 4 (5 × 5), nor for
    a few input channels (4: the products would be nearly matrix-vector ones)."""
    calls = []
    real = conv_api._gemm_taps
    monkeypatch.setattr(conv_api, "_gemm_taps",
                        lambda *a: calls.append(a[0].shape) or real(*a))
    rng = np.random.default_rng(0)
    for (C, H), (F, Ho) in [((32, 28), (32, 14)), ((64, 7), (32, 4)), ((4, 28), (32, 14))]:
        x = rng.standard_normal((2, C, H, H)).astype(np.float32)
        dy = rng.standard_normal((2, F, Ho, Ho)).astype(np.float32)
        conv2d_grad_weight(dy, x, 3, 2, 1)
    assert calls == [(2, 32, 14, 14)]


# (N, C, F, H, W, K, s, p) with 8 or more channels, which the grid above never has: the GEMM
# path loads small samples channels-last in tiles of 8 channels (then one by one for the rest)
WIDE_CASES = [
    (7, 11, 9, 6, 5, 3, 2, 1),     # 8 + 3 channels of x, 8 + 1 of dy: tiles and leftovers
    (4, 64, 32, 7, 7, 3, 2, 1),    # enc.conv3 (dec.convT1 reversed): x and dy both by tile
    (3, 16, 12, 20, 18, 3, 2, 1),  # x past the tile budget (by channel); dy by tile
]


# (C, H, W, dtype) of one sample for the loader alone: tiles with channels left over, tiles
# only, past the budget (f32 and f64), fewer than 8 channels
LOAD_CASES = [(11, 6, 5, np.float32), (16, 3, 4, np.float64), (64, 7, 7, np.float32),
              (16, 20, 18, np.float32), (9, 30, 31, np.float64), (5, 4, 3, np.float32)]


@pytest.mark.parametrize("C, H, W, dtype", LOAD_CASES, ids=str)
def test_load_channels_last_is_the_transpose_and_keeps_the_border(C, H, W, dtype):
    """plane[top + h, (left + w)·C + c] = x[c, h, w] on both sides of the tile budget, with
    channels left over after the tiles of 8; every other entry of the plane is untouched."""
    import numpyvae.kernels.gemm as gemm

    x = np.random.default_rng(5).standard_normal((C, H, W)).astype(dtype)
    top, left = 2, 1
    plane = np.full((H + 3, (W + 2) * C), -7.0, dtype)
    gemm._load_channels_last(x, top, left, plane)
    expected = np.full((H + 3, W + 2, C), -7.0, dtype)
    expected[top:top + H, left:left + W] = x.transpose(1, 2, 0)
    assert np.array_equal(plane, expected.reshape(plane.shape))


def test_load_cases_reach_both_ways_of_loading():
    """LOAD_CASES and WIDE_CASES each hold samples on both sides of the tile budget."""
    import numpyvae.kernels.gemm as gemm

    for sizes in ([C * H * W * np.dtype(dtype).itemsize for C, H, W, dtype in LOAD_CASES],
                  [C * H * W * 4 for _, C, _, H, W, *_ in WIDE_CASES]):
        assert min(sizes) <= gemm._TILE_LOAD_BYTES < max(sizes)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", WIDE_CASES, ids=_ids)
def test_wide_convs_match_reference(cfg, dtype, three_samples_per_chunk):
    """Every GEMM direction with 8 or more channels (and the transposed conv's, whose input
    gradient by phase loads dy the same way), in chunks of 3 samples."""
    N, C, F, H, W, K, s, p = cfg
    Ho, Wo = conv_output_size(H, K, s, p), conv_output_size(W, K, s, p)
    three_samples_per_chunk(C, K, Ho * Wo, dtype)
    x, w, b, dy, y_ref, dx_ref, dw_ref, _ = _random_case(cfg, dtype, np.random.default_rng(7))
    tag = f"{cfg} {np.dtype(dtype)}"
    assert_close(conv2d_forward(x, w, b, s, p, method="gemm"), y_ref, dtype, f"forward {tag}")
    assert_close(conv2d_grad_input(dy, w, (H, W), s, p, method="gemm"), dx_ref, dtype,
                 f"grad_input {tag}")
    assert_close(conv2d_grad_weight(dy, x, K, s, p, method="gemm")[0], dw_ref, dtype,
                 f"grad_weight {tag}")
    y, dw = conv2d_forward_and_grad_weight(x, w, dy, s, p, method="gemm")
    assert_close(y, y_ref - b.astype(np.float64)[None, :, None, None], dtype, f"fused y {tag}")
    assert_close(dw, dw_ref, dtype, f"fused dw {tag}")


# (N, C, F, H, W, K, s, p): the CNN's two thin layers at their image size, then the direct
# path's branches at odd shapes: flattened stride-1 taps (F = 1, output the input's size),
# per-row taps (F = 1 otherwise), a sample's windows (F > 1); even and odd kernels, N = 1
THIN_CASES = [
    (3, 1, 32, 28, 28, 3, 2, 1),  # enc.conv1: 1 → 32, 28 → 14
    (3, 32, 1, 28, 28, 3, 1, 1),  # dec.conv1: 32 → 1, 28 → 28
    (2, 3, 1, 5, 7, 3, 1, 1),
    (1, 2, 1, 7, 5, 5, 1, 2),
    (2, 2, 1, 7, 6, 2, 1, 0),
    (2, 3, 1, 9, 7, 3, 3, 2),
    (2, 1, 3, 9, 7, 2, 2, 0),
    (1, 1, 2, 7, 9, 5, 3, 2),
    (2, 1, 5, 6, 5, 1, 1, 0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", THIN_CASES, ids=_ids)
def test_thin_convs_take_the_direct_path_and_match_reference(cfg, dtype):
    """One channel in or out: ``auto`` picks the direct path, whose every direction (and the
    fused pair) matches the definition, at the CNN's shapes and at odd ones."""
    N, C, F, H, W, K, s, p = cfg
    assert conv_api._use_direct("auto", F, C)
    rng = np.random.default_rng(11)
    x, w, b, dy, y_ref, dx_ref, dw_ref, db_ref = _random_case(cfg, dtype, rng)
    bias_c = rng.standard_normal(C).astype(dtype)
    assert_close(conv2d_forward(x, w, b, s, p), y_ref, dtype, "forward")
    assert_close(conv2d_grad_input(dy, w, (H, W), s, p, bias=bias_c), dx_ref
                 + bias_c.astype(np.float64)[None, :, None, None], dtype, "grad_input + bias")
    dw, db = conv2d_grad_weight(dy, x, K, s, p)
    assert_close(dw, dw_ref, dtype, "grad_weight")
    assert_close(db, db_ref, dtype, "grad_bias")
    y, dw2 = conv2d_forward_and_grad_weight(x, w, dy, s, p)
    assert_close(y, y_ref - b.astype(np.float64)[None, :, None, None], dtype, "fused forward")
    assert_close(dw2, dw_ref, dtype, "fused grad_weight")
    dx3, dw3, db3 = conv2d_backward(dy, x, w, s, p)
    assert_close(dx3, dx_ref, dtype, "backward grad_input")
    assert_close(dw3, dw_ref, dtype, "backward grad_weight")
    assert_close(db3, db_ref, dtype, "backward grad_bias")


@pytest.mark.parametrize("cfg, by_rows", [(THIN_CASES[1], True), (THIN_CASES[2], True),
                                          (THIN_CASES[3], False), (THIN_CASES[5], False)],
                         ids=["dec.conv1", "3x3-odd", "5x5", "stride3"])
def test_thin_output_backward_is_one_pass(cfg, by_rows, monkeypatch):
    """One output channel: the layer's backward runs both gradients in one kernel call,
    on dy's 3 shifted rows for a 3×3 stride-1 'same' conv (dec.conv1) and on the 9 tap
    planes otherwise; neither gradient is computed a second time."""
    N, C, F, H, W, K, s, p = cfg
    calls = []
    real = conv_api.direct.backward_by_taps
    monkeypatch.setattr(conv_api.direct, "backward_by_taps",
                        lambda *a: calls.append(a[8]) or real(*a))
    for name in ("grad_input_by_taps", "grad_weight_by_taps"):
        monkeypatch.setattr(conv_api.direct, name, None)  # calling either would raise
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, K, K))
    dy = rng.standard_normal((N, F, *conv2d_definition(x, w, None, s, p).shape[2:]))
    dx, dw, _ = conv_api.conv2d_backward_unchecked(dy, x, w, s, p)
    assert calls == [by_rows]
    dx_ref, dw_ref, _ = conv2d_grad_definition(dy, x, w, s, p)
    assert_close(dx, dx_ref, np.float64, "grad_input")
    assert_close(dw, dw_ref, np.float64, "grad_weight")


@pytest.mark.parametrize("cfg", [THIN_CASES[0], THIN_CASES[6]], ids=["enc.conv1", "2x2"])
def test_thin_input_bias_gradient_comes_from_the_weight_pass(cfg, monkeypatch):
    """By windows (F > 1), db is the last column of the weight gradient's pass (a row of ones
    beside the windows), not a second pass over dy: it matches the definition without
    channel_sum."""
    N, C, F, H, W, K, s, p = cfg
    monkeypatch.setattr(conv_api, "channel_sum_unchecked", None)  # calling it would raise
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, K, K))
    dy = rng.standard_normal((N, F, *conv2d_definition(x, w, None, s, p).shape[2:]))
    dw, db = conv_api.conv2d_grad_weight_unchecked(dy, x, K, s, p)
    _, dw_ref, db_ref = conv2d_grad_definition(dy, x, w, s, p)
    assert_close(dw, dw_ref, np.float64, "grad_weight")
    assert_close(db, db_ref, np.float64, "grad_bias")


@pytest.mark.parametrize("n_out, n_in, K, s, p", [(28, 14, 3, 2, 1), (27, 14, 3, 2, 1),
                                                 (9, 3, 1, 3, 0), (13, 4, 5, 3, 2),
                                                 (6, 6, 3, 1, 1), (5, 2, 2, 2, 0)])
def test_input_gradient_phases_cover_every_pixel_once(n_out, n_in, K, s, p):
    """The sub-pixel split of one axis: phase r owns the outputs h with (h + p) mod s = r and
    the taps a ≡ r (mod s); together the phases cover each output once and each tap once, and
    every tap reads inside the zero-bordered input."""
    phases, before, after = conv_api._axis_phases(n_out, n_in, K, s, p)
    owned = [s * u + r - p for r, _, u0, U in phases for u in range(u0, u0 + U)]
    assert sorted(owned) == list(range(n_out))
    assert sum(T for _, T, _, _ in phases) == K
    for r, T, u0, U in phases:
        assert T == len(range(r, K, s))
        for u in range(u0, u0 + U):
            for t in range(T):
                assert -before <= u - t <= n_in - 1 + after
    if (K, s) == (3, 2):  # the CNN's layers: 2 and 1 taps per axis, so 4, 2, 2, 1 per phase
        assert sorted(T for _, T, _, _ in phases) == [1, 2]


def test_tolerance_catches_a_one_percent_error():
    """Negative control: the comparison fails on an answer 1% off, or with one wrong entry."""
    ref = np.random.default_rng(5).standard_normal((3, 4, 5, 5))
    for dtype in DTYPES:
        with pytest.raises(AssertionError):
            assert_close((ref * 1.01).astype(dtype), ref, dtype, "scaled")
        bad = ref.astype(dtype)
        bad[1, 2, 3, 4] += 0.01 * np.abs(ref).max()
        with pytest.raises(AssertionError):
            assert_close(bad, ref, dtype, "one entry")
        assert_close(ref.astype(dtype), ref, dtype, "exact")


def test_grid_is_a_few_hundred_configurations():
    # odd/even/non-square, K 1/3/5, s 1/2/3, p 0/1/2, every legal output_padding, N 1/7, 2 dtypes
    assert 300 <= N_CONFIGURATIONS <= 1500
    assert {c[5] for c in CONV_CONFIGS} == {1, 3, 5}
    assert {c[8] for c in TRANSPOSE_CONFIGS} == {0, 1, 2}
    assert {c[0] for c in CONV_CONFIGS} == {1, 7}


def test_output_size_formula():
    assert conv_output_size(28, 3, 2, 1) == 14
    assert conv_output_size(7, 3, 2, 1) == 4
    assert conv_output_size(28, 3, 1, 1) == 28


# ----------------------------------------------------------------------------
# Threads: no races, same numbers at any thread count, bitwise the same twice
# ----------------------------------------------------------------------------
# shapes whose parallel work items (N·C, N·F, F·C planes) do not split evenly in two or three
THREAD_CASES = [
    # (N, C, F, H, W, K, s, p)
    (5, 3, 6, 11, 9, 3, 2, 1),   # GEMM path
    (7, 1, 5, 12, 12, 3, 2, 1),  # thin input (1 channel): direct path
    (5, 6, 1, 10, 10, 3, 1, 1),  # thin output (1 channel): direct path
    (4, 3, 1, 9, 8, 3, 2, 0),    # thin output at stride 2: the direct path's per-row taps
    (3, 5, 7, 9, 8, 5, 3, 2),    # GEMM path, stride 3
    (5, 11, 9, 7, 6, 3, 2, 1),   # GEMM path, 8 + 3 channels: loaded by tile and one by one
]


def _run_all(case, dtype, rng_seed=3):
    N, C, F, H, W, K, s, p = case
    rng = np.random.default_rng(rng_seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, K, K)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    Ho, Wo = conv_output_size(H, K, s, p), conv_output_size(W, K, s, p)
    dy = rng.standard_normal((N, F, Ho, Wo)).astype(dtype)
    out = {}
    for method in METHODS:
        out[f"{method} forward"] = conv2d_forward(x, w, b, s, p, method=method)
        out[f"{method} grad_input"] = conv2d_grad_input(dy, w, (H, W), s, p, method=method)
        dw, db = conv2d_grad_weight(dy, x, K, s, p, method=method)
        out[f"{method} grad_weight"], out[f"{method} grad_bias"] = dw, db
        # the fused pair, with dy standing in for the other gradient: y's shape, x's windows
        out[f"{method} fused_forward"], out[f"{method} fused_weight"] = (
            conv2d_forward_and_grad_weight(x, w, dy, s, p, method=method))
        # both gradients in one call (one pass per sample on the direct path when F == 1)
        (out[f"{method} backward_input"], out[f"{method} backward_weight"],
         out[f"{method} backward_bias"]) = conv2d_backward(dy, x, w, s, p, method=method)
    ref = {"forward": conv2d_definition(x, w, b, s, p)}
    ref["grad_input"], ref["grad_weight"], ref["grad_bias"] = conv2d_grad_definition(dy, x, w, s, p)
    ref["fused_forward"] = ref["forward"] - b.astype(np.float64)[None, :, None, None]
    ref["fused_weight"] = ref["grad_weight"]
    for part in ("input", "weight", "bias"):
        ref[f"backward_{part}"] = ref[f"grad_{part}"]
    return out, ref


_TWO_THREADS = """
import numpyvae.kernels.conv as conv_api
from tests.kernels.test_conv_kernels import THREAD_CASES, _run_all, assert_close
default_grid, default_channels = conv_api._TAPS_MAX_GRID, conv_api._TAPS_MIN_CHANNELS
for one_sample_chunks, taps in ((False, False), (True, False), (False, True), (True, True)):
    # one sample per GEMM chunk: as many chunks as samples, so every worker gets some
    conv_api._CHUNK_BYTES = 1 if one_sample_chunks else 1 << 19
    conv_api._PHASE_CHUNK_BYTES = 1 if one_sample_chunks else 1 << 18
    conv_api._GRAD_WEIGHT_ROWS = 1 if one_sample_chunks else 512
    conv_api._TAPS_MAX_GRID = float("inf") if taps else default_grid  # weight gradient by tap
    conv_api._TAPS_MIN_CHANNELS = 1 if taps else default_channels
    for dtype in (np.float32, np.float64):
        for case in THREAD_CASES:
            results = {}
            for threads in (1, 2):
                numba.set_num_threads(threads)
                first, ref = _run_all(case, dtype)
                again, _ = _run_all(case, dtype)
                for name, got in first.items():
                    # same thread count twice: bitwise the same
                    assert np.array_equal(got, again[name]), (case, name, "not reproducible")
                    assert_close(got, ref[name.split()[1]], dtype, f"{case} {name} {threads}T")
                results[threads] = first
            for name, got in results[1].items():
                assert np.array_equal(got, results[2][name]), (case, name, "1 vs 2 threads")
print("ok")
"""


def test_one_thread_and_two_threads_agree_bitwise():
    """No sum's order depends on the thread count: chunks are set by the shapes alone, and the
    BLAS inside the GEMM path runs single-threaded within each chunk. Run in a process with a
    pool of 2, so 1 thread really is compared with 2 (it fails if 2 threads cannot run)."""
    assert run_with_two_threads(_TWO_THREADS).strip().endswith("ok")


_SUBPROCESS = """
import numba, numpy as np, sys
sys.path.insert(0, {root!r})
import numpyvae.kernels.conv as conv_api
from tests.kernels.test_conv_kernels import THREAD_CASES, _run_all, assert_close
assert numba.config.NUMBA_NUM_THREADS == 3
conv_api._CHUNK_BYTES = conv_api._GRAD_WEIGHT_ROWS = 1  # one sample per GEMM chunk
conv_api._PHASE_CHUNK_BYTES = 1
default_grid, default_channels = conv_api._TAPS_MAX_GRID, conv_api._TAPS_MIN_CHANNELS
for dtype, taps in ((np.float32, False), (np.float64, False), (np.float32, True)):
    conv_api._TAPS_MAX_GRID = float("inf") if taps else default_grid  # weight gradient by tap
    conv_api._TAPS_MIN_CHANNELS = 1 if taps else default_channels
    for case in THREAD_CASES:
        numba.set_num_threads(1)
        one, ref = _run_all(case, dtype)
        numba.set_num_threads(3)
        three, _ = _run_all(case, dtype)
        for name, got in three.items():
            assert np.array_equal(got, one[name]), (case, name)
            assert_close(got, ref[name.split()[1]], dtype, name)
print("ok")
"""


def test_three_threads_in_a_subprocess():
    """Three numba threads on small odd-sized work: chunk boundaries fall mid-plane-group."""
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    root = str(Path(__file__).resolve().parents[2])
    code = _SUBPROCESS.format(root=root)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------
def test_kernels_reject_bad_input():
    x = np.zeros((2, 3, 5, 5), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="channels"):
        conv2d_forward(x, np.zeros((4, 2, 3, 3), np.float32), None, 1, 0)
    with pytest.raises(ValueError, match="dtype"):
        conv2d_forward(x, w.astype(np.float64), None, 1, 0)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv2d_forward(np.zeros((2, 3, 2, 2), np.float32), w, None, 1, 0)
    with pytest.raises(ValueError, match="square"):
        conv2d_forward(x, np.zeros((4, 3, 3, 2), np.float32), None, 1, 0)
    with pytest.raises(ValueError, match="dy is"):
        conv2d_grad_input(np.zeros((2, 4, 3, 3), np.float32), w, (9, 9), 1, 0)
    with pytest.raises(ValueError, match="method"):
        conv2d_forward(x, w, None, 1, 0, method="fft")
    with pytest.raises(ValueError, match="stride"):
        conv2d_forward(x, w, None, 0, 0)
    with pytest.raises(ValueError, match="expected d of shape"):
        conv2d_forward_and_grad_weight(x, w, np.zeros((2, 4, 4, 4), np.float32), 1, 0)
    with pytest.raises(ValueError, match="gives dy of shape"):
        conv2d_backward(np.zeros((2, 4, 4, 4), np.float32), x, w, 1, 0)
    with pytest.raises(ValueError, match="expected x of shape"):
        conv2d_backward(np.zeros((2, 4, 3, 3), np.float32), x[:, :2], w, 1, 0)
    with pytest.raises(ValueError, match="expected x of shape"):
        conv2d_backward(np.zeros((2, 4, 3, 3), np.float32), x.astype(np.float64), w, 1, 0)
