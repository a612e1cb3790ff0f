"""The gradcheck, vae and adam steps draw random configurations too (from the printed seed):
each catches a wrong implementation that every fixed case passes, and passes right ones."""

from __future__ import annotations

import pytest

from numpyvae import nn
from numpyvae.learn import check
from numpyvae.nn.adam import Adam

from . import planted

# (step, a wrong implementation the fixed cases pass, what its failing random line shows)
WRONG = {
    "gradcheck: x.reshape(-1) of a view is a copy": (
        "gradcheck", planted.reshaped_differences, "is 0 everywhere for an x that is not one "
        "C-ordered block"),
    "adam: moments keyed by the parameter's shape": ("adam", planted.ShapeKeyedAdam,
                                                     "the update differs from step 1 on"),
    "vae: softplus cut at h = 10": ("vae", planted.SoftplusCutAt10, "kl differs from the "
                                    "reference"),
}
RIGHT = {"gradcheck": (planted.central_differences,),
         "adam": (Adam, planted.PlainAdam),
         "vae": (nn.Reparameterize,)}


def _split(result):
    fixed = [x for x in result.lines if not x.label.startswith("random:")]
    return fixed, [x for x in result.lines if x.label.startswith("random:")]


@pytest.mark.parametrize("mistake", list(WRONG))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_mistake_the_fixed_cases_miss_fails_a_random_case(mistake, seed):
    step, wrong, hint = WRONG[mistake]
    result = check(step, wrong, echo=False, speed=False, seed=seed)
    fixed, random = _split(result)
    assert fixed and all(x.passed for x in fixed), result.text  # the fixed cases miss it
    assert random and not result.passed, result.text
    assert any(hint in (x.hint or "") for x in random if not x.passed), result.text
    assert f"random configurations from seed {seed}" in result.text


@pytest.mark.parametrize("step", list(RIGHT))
def test_right_implementations_pass_the_random_cases_of_many_seeds(step):
    for obj in RIGHT[step]:
        for seed in range(12):
            result = check(step, obj, echo=False, speed=False, seed=seed)
            assert result.passed and _split(result)[1], result.text


def test_random_cases_of_a_seed_are_drawn_again():
    for step, obj in (("gradcheck", planted.central_differences), ("adam", Adam),
                      ("vae", nn.Reparameterize)):
        a, b = (check(step, obj, echo=False, speed=False, seed=7) for _ in range(2))
        labels = [x.label for x in _split(a)[1]]
        assert labels and labels == [x.label for x in _split(b)[1]]
        assert labels != [x.label for x in _split(check(step, obj, echo=False, speed=False,
                                                        seed=8))[1]]
