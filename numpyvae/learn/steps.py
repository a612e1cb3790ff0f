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
    reading: str  # where the math is derived: README reading-order item and the package file
    todo: str  # what an unfilled stub still needs, for "not implemented yet: write ..."


STEPS: tuple[Step, ...] = (
    Step("gradcheck", ("numerical_gradient",),
         "central differences: how to know a backward is right before trusting it",
         "README reading order 5, numpyvae/nn/gradcheck.py", "numerical_gradient"),
    Step("dense", ("Dense",),
         "the first backward: the gradients of a matrix product, the pattern every layer "
         "follows",
         "README reading order 1-2, numpyvae/nn/layer.py and numpyvae/nn/dense.py",
         "forward/backward"),
    Step("activations", ("ELU", "Softplus", "Sigmoid"),
         "elementwise layers: the chain rule entry by entry, and writing f so it never "
         "overflows",
         "README reading order 3, numpyvae/nn/activations.py", "forward/backward"),
    Step("conv2d", ("Conv2d",),
         "convolution as a sum over the padded input; its weight and input gradients; stride",
         "README reading order 7, numpyvae/nn/conv2d.py", "forward/backward"),
    Step("conv_transpose2d", ("ConvTranspose2d",),
         "the transposed convolution: its forward is a convolution's input gradient; "
         "output_padding",
         "README reading order 7, numpyvae/nn/conv_transpose2d.py", "forward/backward"),
    Step("batchnorm2d", ("BatchNorm2d",),
         "the first backward where every output depends on every input of its channel; "
         "train vs eval",
         "README reading order 6, numpyvae/nn/batchnorm2d.py", "forward/backward"),
    Step("vae", ("Reparameterize",),
         "z = m + √v ⊙ ε and the KL term: the two places the VAE differs from an autoencoder",
         "README reading order 9, numpyvae/nn/reparameterize.py and numpyvae/models/vae.py",
         "forward/backward"),
    Step("adam", ("Adam",),
         "the optimizer: first and second moments, and why they need bias correction",
         "README reading order 8, numpyvae/nn/adam.py", "step"),
)

BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}


def get_step(name: str) -> Step:
    """The step called ``name``, or a ValueError listing the steps."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown step {name!r}: expected one of "
                         f"{', '.join(s.name for s in STEPS)}") from None
