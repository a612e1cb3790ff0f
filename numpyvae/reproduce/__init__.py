"""Reproduce the report: every experiment, our numbers beside the report's, its claims tested.

    python -m numpyvae reproduce [--out runs/report] [--only NAME ...] [--quick]

``experiments`` lists the runs, ``sweep`` trains and measures them, ``claims`` holds the
rule behind each verdict, ``tables`` and ``figures`` write results.md and the pictures.
"""

from .experiments import EXPERIMENTS, FULL, QUICK, RunSpec, Settings
from .sweep import Result, reproduce

__all__ = ["EXPERIMENTS", "FULL", "QUICK", "Result", "RunSpec", "Settings", "reproduce"]
