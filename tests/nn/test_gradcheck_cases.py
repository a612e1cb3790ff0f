"""Every nn layer's gradient-check case (numpyvae/nn/gradcheck_cases.py) passes, and the
same check fails when that layer's backward is 0.1% off: the negative control, per case.

``run_case`` and ``run_case_off`` are shared with tests/models/test_gradcheck_cases.py.
"""

import numpy as np
import pytest

from numpyvae.nn.gradcheck import MAX_ENTRIES, TOLERANCE, GradResult, gradcheck_layer
from numpyvae.nn.gradcheck_cases import Case, cases

OFF = 1.001  # a backward 0.1% off


def run_case(case: Case, seed: int = 0, scale: float = 1.0) -> tuple[list[GradResult], str]:
    """Check the case; with ``scale`` ≠ 1 one gradient is scaled by it after backward: the
    input gradient, or (a layer that returns none) its first parameter's. Returns the
    results and the name of that gradient."""
    layer, x = case.build(np.random.default_rng(seed))
    backward = layer.backward
    off = "input" if layer.needs_input_grad else layer.named_parameters()[0][0]

    def backward_off(dout):
        dx = backward(dout)
        if dx is None:
            layer.named_parameters()[0][2][...] *= scale
            return None
        return dx * scale

    if scale != 1.0:
        layer.backward = backward_off
    results = gradcheck_layer(layer, x, seed=seed, max_entries=case.max_entries or MAX_ENTRIES)
    return results, off


def assert_case_passes(case: Case) -> None:
    results, _ = run_case(case)
    assert results, "nothing was checked"
    for r in results:
        assert r.checked > 0, r
        assert r.max_error <= TOLERANCE, f"{case.id} {r.name}: max error {r.max_error:.2e}"


def assert_case_off_fails(case: Case) -> None:
    results, off = run_case(case, scale=OFF)
    result = {r.name: r for r in results}[off]
    assert not result.passed and result.max_error > 1e-4, (case.id, result)


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.id)
def test_case_passes(case):
    assert_case_passes(case)


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.id)
def test_case_with_backward_off_by_0_1_percent_fails(case):
    assert_case_off_fails(case)


def test_every_nn_layer_has_a_case():
    import numpyvae.nn as nn

    layers = {name for name in nn.__all__
              if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Layer)
              and name != "Layer"}  # Adam is no layer: its tests are tests/nn/test_adam.py
    assert layers <= {c.layer for c in cases()}, layers - {c.layer for c in cases()}
