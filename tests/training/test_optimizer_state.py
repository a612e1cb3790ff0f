"""Adam's checkpoint state: saved, loaded in place, refused when it does not fit, and the
same for a learner's Adam that keeps only t, m and v."""

import numpy as np
import pytest

from numpyvae.nn.adam import Adam
from numpyvae.training.optimizer_state import (
    load_optimizer_state,
    non_finite_moments,
    optimizer_state,
)
from tests.learn.planted import PlainAdam


def test_state_round_trip_through_npz_gives_identical_steps(tmp_path):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [np.zeros_like(p) for p in params]
    opt = Adam(list(zip(params, grads, strict=True)), lr=0.02)

    def set_grads(step):
        r = np.random.default_rng(100 + step)
        for g in grads:
            g[...] = r.standard_normal(g.shape)

    for step in range(3):
        set_grads(step)
        opt.step()

    np.savez(tmp_path / "adam.npz", **optimizer_state(opt))
    twin_params = [p.copy() for p in params]
    twin_grads = [np.zeros_like(g) for g in grads]
    twin = Adam(list(zip(twin_params, twin_grads, strict=True)), lr=0.02)
    with np.load(tmp_path / "adam.npz") as state:
        load_optimizer_state(twin, state)
    assert twin.t == 3

    for step in range(3, 6):
        set_grads(step)
        for g, tg in zip(grads, twin_grads, strict=True):
            tg[...] = g
        opt.step()
        twin.step()
        for p, tp in zip(params, twin_params, strict=True):
            np.testing.assert_array_equal(p, tp)


def test_state_contents_and_in_place_load():
    p, g = np.ones(3), np.full(3, 0.5)
    opt = Adam([(p, g)], lr=0.1)
    opt.step()
    state = optimizer_state(opt)
    assert set(state) == {"t", "m.0", "v.0"} and state["t"] == 1
    np.testing.assert_allclose(state["m.0"], 0.1 * 0.5)
    np.testing.assert_allclose(state["v.0"], 0.001 * 0.25)
    state["m.0"][...] = 99  # a copy: the optimizer is unaffected
    assert opt.m[0][0] == pytest.approx(0.05)
    m_array = opt.m[0]
    load_optimizer_state(opt, {"t": 7, "m.0": np.full(3, 2.0), "v.0": np.full(3, 4.0)})
    assert opt.m[0] is m_array and opt.t == 7
    np.testing.assert_array_equal(opt.m[0], 2.0)


def test_load_rejects_mismatch_without_writing():
    p = np.ones(3)
    opt = Adam([(p, np.ones(3))])
    opt.step()
    before = optimizer_state(opt)
    with pytest.raises(ValueError, match=r"Adam: m.0 has shape \(4,\).*expected \(3,\)"):
        load_optimizer_state(opt, {"t": 5, "m.0": np.zeros(4), "v.0": np.zeros(3)})
    with pytest.raises(ValueError, match=r"Adam: state does not fit.*missing \['v.0'\]"):
        load_optimizer_state(opt, {"t": 5, "m.0": np.zeros(3)})
    assert opt.t == before["t"]
    np.testing.assert_array_equal(opt.m[0], before["m.0"])


def test_a_plain_adam_with_t_m_v_round_trips():
    """The learner's Adam (no checkpoint methods) saves and resumes like the package's."""
    p, twin_p = np.ones(4), np.ones(4)
    g = np.linspace(-1, 1, 4)
    mine, ref = PlainAdam([(p, g)], lr=0.1), Adam([(twin_p, g)], lr=0.1)
    mine.step()
    ref.step()
    resumed = PlainAdam([(p.copy(), g)], lr=0.1)
    load_optimizer_state(resumed, optimizer_state(mine))
    assert resumed.t == 1
    resumed.step()
    ref.step()
    np.testing.assert_allclose(resumed.params[0][0], twin_p, rtol=1e-15)


@pytest.mark.parametrize("moment, bad", [("v", np.inf), ("m", np.nan), ("v", np.nan)])
def test_a_non_finite_moment_is_named_and_refused_at_load(moment, bad):
    """A v that overflowed (g² beyond float32) freezes its parameter for good while the loss
    stays finite (issue 23: --lr 1e3, --c 1e-30 and --beta 1e30 exited 0 so)."""
    params = [(np.ones(3, np.float32), np.ones(3, np.float32)),
              (np.ones(5, np.float32), np.ones(5, np.float32))]
    opt = Adam(params, lr=0.1)
    opt.step()
    assert non_finite_moments(opt) == ""
    getattr(opt, moment)[1][2] = bad
    assert non_finite_moments(opt) == f"1 of 16 numbers, in {moment}.1"
    state = optimizer_state(opt)
    fresh = Adam([(np.ones(3), np.ones(3)), (np.ones(5), np.ones(5))])
    with pytest.raises(ValueError, match=f"Adam: {moment}.1 holds NaN or infinity"):
        load_optimizer_state(fresh, state)
    assert fresh.t == 0 and non_finite_moments(fresh) == ""
