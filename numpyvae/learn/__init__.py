"""Learn by implementing: a graded track from your own gradient check to a VAE on your layers.

    python -m numpyvae learn                          # the steps, and which are done
    python -m numpyvae learn start STEP [--dir DIR]   # write DIR/STEP.py, a stub to fill in
    python -m numpyvae learn check STEP [--dir DIR]   # grade it
    python -m numpyvae learn train [--dir DIR]        # the report's VAE on your layers

From a notebook: ``from numpyvae.learn import check; check("dense", MyDense)``.
"""

from __future__ import annotations

from typing import Any

from .grader import CheckResult
from .steps import STEPS, Step

__all__ = ["check", "CheckResult", "STEPS", "Step"]


def check(step: str, obj_or_module: Any, echo: bool = True, speed: bool = True,
          seed: int | None = None) -> CheckResult:
    """Grade ``obj_or_module`` as step ``step`` and print the report; returns the result.

    ``obj_or_module`` is a module, a dict {name: class or function}, or the one class
    (or function) the step needs, e.g. ``check("dense", MyDense)`` or
    ``check("gradcheck", numerical_gradient)``; ``result.passed`` is the verdict.
    ``seed`` draws the random configurations again (the printout shows each check's).
    """
    from .grader import run_check

    return run_check(step, obj=obj_or_module, echo=print if echo else None, speed=speed,
                     seed=seed)
