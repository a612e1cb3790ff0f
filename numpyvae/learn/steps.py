"""The track: eight steps, in order, each with what it teaches and where its math is derived.

A step is a file the learner writes, ``DIR/STEP.py``, started from a stub
(``numpyvae/learn/stubs/STEP.py``) and graded by ``learn check STEP``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step: its file name, the names the file must define, what it teaches."""

    name: str
    defines: tuple[str, ...]
    teaches: str
    reading: str  # where the math is derived: the stub's docstring and the README's item
    todo: str  # what an unfilled stub still needs, for "not implemented yet: write ..."
    compare: str = ""  # the package's file: something to compare with once the step passes


STEPS: tuple[Step, ...] = (
    Step("gradcheck", ("numerical_gradient",),
         "central differences: how to know a backward is right before trusting it",
         "your gradcheck.py's docstring (from its stub), README reading order 5",
         "numerical_gradient", "numpyvae/nn/gradcheck.py"),
    Step("dense", ("Dense",),
         "the first backward: the gradients of a matrix product, the pattern every layer "
         "follows",
         "your dense.py's docstring (from its stub), README reading order 1-2",
         "forward/backward", "numpyvae/nn/dense.py"),
    Step("activations", ("ELU", "Softplus", "Sigmoid"),
         "elementwise layers: the chain rule entry by entry, and writing f so it never "
         "overflows",
         "your activations.py's docstrings (from its stub), README reading order 3",
         "forward/backward", "numpyvae/nn/activations.py"),
    Step("conv2d", ("Conv2d",),
         "convolution as a sum over the padded input; its weight and input gradients; stride",
         "your conv2d.py's docstring (from its stub), README reading order 7",
         "forward/backward", "numpyvae/nn/conv2d.py"),
    Step("conv_transpose2d", ("ConvTranspose2d",),
         "the transposed convolution: its forward is a convolution's input gradient; "
         "output_padding",
         "your conv_transpose2d.py's docstring (from its stub), README reading order 7",
         "forward/backward", "numpyvae/nn/conv_transpose2d.py"),
    Step("batchnorm2d", ("BatchNorm2d",),
         "the first backward where every output depends on every input of its channel; "
         "train vs eval",
         "your batchnorm2d.py's docstring (from its stub), README reading order 6",
         "forward/backward", "numpyvae/nn/batchnorm2d.py"),
    Step("vae", ("Reparameterize",),
         "z = m + √v ⊙ ε and the KL term: the two places the VAE differs from an autoencoder",
         "your vae.py's docstring (from its stub), README reading order 9 and "
         "numpyvae/models/vae.py", "forward/backward", "numpyvae/nn/reparameterize.py"),
    Step("adam", ("Adam",),
         "the optimizer: first and second moments, and why they need bias correction",
         "your adam.py's docstring (from its stub), README reading order 8", "step",
         "numpyvae/nn/adam.py"),
)

BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}


def get_step(name: str) -> Step:
    """The step called ``name``, or a ValueError listing the steps."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown step {name!r}: expected one of "
                         f"{', '.join(s.name for s in STEPS)}") from None
