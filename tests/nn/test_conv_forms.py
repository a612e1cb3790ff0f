"""The convolution's four forms (nn/conv2d.py, nn/conv_transpose2d.py): the definition's loops,
the sum by kernel offsets, im2col and the numba kernel, held to the independent reference
(tests/nn/conv_reference.py: SciPy) and to one another over the kernels' configuration grid.
The reference itself is checked first: by hand, by finite differences and (in
tests/kernels/test_conv_kernels.py) by the adjoint identity."""

from __future__ import annotations

import numpy as np
import pytest

from numpyvae.kernels import conv as conv_kernels
from numpyvae.nn import conv2d as c2
from numpyvae.nn import conv_transpose2d as ct
from tests.kernels.test_conv_kernels import CONV_CONFIGS, TRANSPOSE_CONFIGS, assert_close
from tests.nn.conv_reference import (
    conv2d_definition,
    conv2d_grad_definition,
    conv_transpose2d_definition,
)

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


# ----------------------------------------------------------------------------
# The reference, on its own
# ----------------------------------------------------------------------------
def test_reference_on_hand_worked_examples():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    # 1·1 + 2·2 + 3·4 + 4·5 = 37, and so on, window by window
    np.testing.assert_array_equal(conv2d_definition(x, w, None, 1, 0)[0, 0], [[37, 47], [67, 77]])
    # padded by 1, every 2nd window: [[0 0] [0 1]]·w = 4, [[0 0] [2 3]]·w = 18, ...
    np.testing.assert_array_equal(conv2d_definition(x, w, np.array([0.5]), 2, 1)[0, 0],
                                  [[4.5, 18.5], [36.5, 77.5]])
    # the transposed conv stamps each input pixel's multiple of w, 2 apart, cut 1 from each side
    xt = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    full = np.kron([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]])  # blocks x[i, j]·w
    np.testing.assert_array_equal(conv_transpose2d_definition(xt, w, None, 2, 0, 0)[0, 0], full)
    np.testing.assert_array_equal(conv_transpose2d_definition(xt, w, None, 2, 1, 1)[0, 0],
                                  np.pad(full, ((0, 1), (0, 1)))[1:, 1:][:3, :3])


@pytest.mark.parametrize("cfg", [(2, 2, 3, 5, 4, 3, 2, 1), (1, 3, 2, 6, 7, 3, 3, 2),
                                 (2, 1, 2, 4, 4, 1, 2, 0)], ids=str)
def test_reference_gradients_by_finite_differences(cfg):
    """L = <conv(x, w), dy> is linear in x and in w, so central differences are exact up to
    rounding: every entry of dx and dw is checked against them."""
    N, C, F, H, W, K, s, p = cfg
    rng = np.random.default_rng(30)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, K, K))
    dy = rng.standard_normal(conv2d_definition(x, w, None, s, p).shape)
    dx, dw, db = conv2d_grad_definition(dy, x, w, s, p)
    for arr, grad in ((x, dx), (w, dw)):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            keep = arr[idx]
            arr[idx] = keep + 1e-3
            up = np.sum(conv2d_definition(x, w, None, s, p) * dy)
            arr[idx] = keep - 1e-3
            numeric[idx] = (up - np.sum(conv2d_definition(x, w, None, s, p) * dy)) / 2e-3
            arr[idx] = keep
        np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)))


# ----------------------------------------------------------------------------
# The four forms, over the grid
# ----------------------------------------------------------------------------
def _conv_forms(x, w, b, dy, s, p):
    """{form: (y, dx, dw)} for the conv: each form's forward and its two gradients."""
    K = w.shape[2]
    hw = x.shape[2:]
    return {
        "naive": (c2.conv2d_naive(x, w, b, s, p), *c2.conv2d_naive_backward(dy, x, w, s, p)),
        "by_offsets": (c2.conv2d_by_offsets(x, w, b, s, p),
                       c2.conv2d_grad_input_by_offsets(dy, w, hw, s, p),
                       c2.conv2d_grad_weight_by_offsets(dy, x, K, s, p)),
        "im2col": (c2.conv2d_im2col(x, w, b, s, p), *c2.conv2d_im2col_backward(dy, x, w, s, p)),
        "kernel": (conv_kernels.conv2d_forward_unchecked(x, w, b, s, p),
                   conv_kernels.conv2d_grad_input_unchecked(dy, w, hw, s, p),
                   conv_kernels.conv2d_grad_weight_unchecked(dy, x, K, s, p)[0]),
    }


@DTYPES
def test_conv2d_forms_match_the_reference_and_one_another(dtype):
    """y, dx and dW of every form against SciPy's, then each faster form against the
    definition's loops: odd/non-square sizes, K 1/3/5, stride 1–3, padding 0–2, N 1/7."""
    for i, cfg in enumerate(CONV_CONFIGS):
        N, C, F, H, W, K, s, p = cfg
        rng = np.random.default_rng(list(cfg))
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((F, C, K, K)).astype(dtype)
        b = rng.standard_normal(F).astype(dtype) if i % 3 else None
        y_ref = conv2d_definition(x, w, b, s, p)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        dx_ref, dw_ref, _ = conv2d_grad_definition(dy, x, w, s, p)
        forms = _conv_forms(x, w, b, dy, s, p)
        for form, got in forms.items():
            for what, a, ref, naive in zip(("y", "dx", "dW"), got, (y_ref, dx_ref, dw_ref),
                                           forms["naive"], strict=True):
                assert_close(a, ref, dtype, f"{form} {what} {cfg} vs the reference")
                assert_close(a, naive.astype(np.float64), dtype, f"{form} {what} {cfg} vs naive")


def _transpose_forms(x, w, b, dy, s, p, op):
    """{form: (y, dx, dw)} for the transposed conv: its own definition's loops, and the
    conv's forms run the other way round (y = the conv's dx, dx = the conv's y,
    dW = the conv's dW with x and dY swapped)."""
    K, out_hw = w.shape[2], dy.shape[2:]
    bias = 0 if b is None else b[:, None, None]
    y_im2col, dw_im2col = c2.conv2d_im2col_backward(x, dy, w, s, p)  # x in dY's place
    return {
        "naive": (ct.conv_transpose2d_naive(x, w, b, s, p, op),
                  *ct.conv_transpose2d_naive_backward(dy, x, w, s, p)),
        "by_offsets": (c2.conv2d_grad_input_by_offsets(x, w, out_hw, s, p) + bias,
                       c2.conv2d_by_offsets(dy, w, None, s, p),
                       c2.conv2d_grad_weight_by_offsets(x, dy, K, s, p)),
        "im2col": (y_im2col + bias, c2.conv2d_im2col(dy, w, None, s, p), dw_im2col),
        "kernel": (conv_kernels.conv2d_grad_input_unchecked(x, w, out_hw, s, p, bias=b),
                   conv_kernels.conv2d_forward_unchecked(dy, w, None, s, p),
                   conv_kernels.conv2d_grad_weight_unchecked(x, dy, K, s, p)[0]),
    }


@DTYPES
def test_conv_transpose2d_forms_match_the_reference_and_one_another(dtype):
    """As above, with every legal output_padding: the forward against the transposed conv's
    own definition, dx against the conv (the adjoint of the adjoint), dW against the conv's
    dW with x and dY swapped."""
    for i, cfg in enumerate(TRANSPOSE_CONFIGS):
        N, C_in, C_out, H, W, K, s, p, op = cfg
        rng = np.random.default_rng(list(cfg))
        x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
        w = rng.standard_normal((C_in, C_out, K, K)).astype(dtype)
        b = rng.standard_normal(C_out).astype(dtype) if i % 3 else None
        y_ref = conv_transpose2d_definition(x, w, b, s, p, op)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        dx_ref = conv2d_definition(dy, w, None, s, p)
        dw_ref = conv2d_grad_definition(x, dy, w, s, p)[1]
        forms = _transpose_forms(x, w, b, dy, s, p, op)
        for form, got in forms.items():
            for what, a, ref, naive in zip(("y", "dx", "dW"), got, (y_ref, dx_ref, dw_ref),
                                           forms["naive"], strict=True):
                assert_close(a, ref, dtype, f"{form} {what} {cfg} vs the reference")
                assert_close(a, naive.astype(np.float64), dtype, f"{form} {what} {cfg} vs naive")
