"""The VAE family's gradient-check cases (numpyvae/models/gradcheck_cases.py): likelihoods and
whole models pass, and each fails with its backward 0.1% off."""

import pytest

from numpyvae.models.gradcheck_cases import LossOfModel, all_cases, model_cases
from numpyvae.nn.gradcheck_cases import cases as nn_cases
from tests.nn.test_gradcheck_cases import assert_case_off_fails, assert_case_passes, run_case


@pytest.mark.parametrize("case", model_cases(), ids=lambda c: c.id)
def test_case_passes(case):
    assert_case_passes(case)


@pytest.mark.parametrize("case", model_cases(), ids=lambda c: c.id)
def test_case_with_backward_off_by_0_1_percent_fails(case):
    assert_case_off_fails(case)


def test_a_whole_model_case_checks_every_parameter():
    case = next(c for c in model_cases() if c.layer == "Autoencoder")
    layer, _ = case.build(__import__("numpy").random.default_rng(0))
    assert isinstance(layer, LossOfModel)
    results, _ = run_case(case)
    assert [r.name for r in results] == [n for n, _, _ in layer.model.named_parameters()]
    assert len(results) == 12  # 6 Dense layers, weight and bias each


def test_the_joined_list_holds_each_case_once():
    ids = [c.id for c in all_cases()]
    assert len(ids) == len(set(ids)) == len(nn_cases()) + len(model_cases())
