"""learn check's conv speed lines: the learner's layer beside every form of nn/conv2d.py
and nn/conv_transpose2d.py."""

from __future__ import annotations

from numpyvae import nn
from numpyvae.learn.speed import report_speed
from numpyvae.learn.steps import STEPS


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)


def test_conv2d_speed_shows_the_learner_beside_the_four_forms():
    report = _Lines()
    step = next(s for s in STEPS if s.name == "conv2d")
    report_speed(step, {"Conv2d": nn.Conv2d}, report)
    rows = [line.split("forward")[0].strip() for line in report.lines[1:]]
    assert rows == ["yours", "1. definition (loops)", "2. sum by offsets", "3. im2col",
                    "4. numba kernel (gemm)"], report.lines
    assert all("backward" in line for line in report.lines[1:]), report.lines


def test_conv_transpose2d_speed_shows_the_learner_beside_its_three_forms():
    """Its line showed only the package's NumPy form beside the learner's and the kernel's."""
    report = _Lines()
    step = next(s for s in STEPS if s.name == "conv_transpose2d")
    report_speed(step, {"ConvTranspose2d": nn.ConvTranspose2d}, report)
    rows = [line.split("forward")[0].strip() for line in report.lines[1:]]
    assert rows == ["yours", "1. definition (loops)", "2. sum by offsets",
                    "3. numba kernel (phases)"], report.lines
    assert all("backward" in line for line in report.lines[1:]), report.lines
