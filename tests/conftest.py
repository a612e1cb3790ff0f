"""Shared test set-up: floating-point errors are errors, and where real data lives."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    """Overflow, divide-by-zero and invalid operations fail the test; underflow is fine."""
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        yield


@pytest.fixture(scope="session")  # a path that never changes: module fixtures may use it
def shared_datasets() -> Path:
    """The verified MNIST / Fashion-MNIST mirror beside the checkout.

    On a user's machine without it the test skips; under CI (``CI`` set) a
    missing folder is a failure, so a wrong path cannot pass silently.
    """
    if not (SHARED_DATASETS / "mnist").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the data mirror is missing: {SHARED_DATASETS}")
        pytest.skip(f"no data mirror at {SHARED_DATASETS}")
    return SHARED_DATASETS
