"""The decoder's distribution p(x|z): Gaussian (the report's) or Bernoulli.

The decoder network ends in raw outputs ``out`` (N, 1, 28, 28), one per pixel.
A likelihood turns them into the image it predicts (``mean``), into the
reconstruction term of the loss (``nll``, per image) and back into dL/d out
(``backward``), like a layer whose input is (x, out):

    Gaussian N(x; x̂, cI), x̂ = sigmoid(out) (or out itself):
        nll = Σ_pixels (x − x̂)² / (2c)                  the report's recon term
        log p(x|z) = −nll − (D/2)·log(2πc)              D pixels: the normalising constant
    Bernoulli(x; p), p = sigmoid(out), out the logits:
        nll = Σ_pixels softplus(out) − x·out            binary cross-entropy, = −log p(x|z)

The Bernoulli form never takes log(sigmoid(out)): softplus(out) = max(out, 0) +
log1p(exp(−|out|)) is exact for any logit, where log(sigmoid(−40)) underflows.
"""

from __future__ import annotations

import math

import numpy as np

from ..nn.activations import Sigmoid

LIKELIHOODS = ("gaussian", "bernoulli")
OUTPUT_ACTIVATIONS = ("sigmoid", "identity")


def _per_image_sum(a: np.ndarray) -> np.ndarray:
    return np.sum(a.reshape(a.shape[0], -1), axis=1)


class Likelihood:
    """The interface: ``mean``, ``nll`` then ``backward``, ``log_prob``."""

    name = ""

    def __init__(self) -> None:
        self.cache = None

    def mean(self, out: np.ndarray) -> np.ndarray:
        """E[x|z]: the image the decoder predicts, same shape as ``out``."""
        raise NotImplementedError

    def nll(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The loss's reconstruction term per image, (N,); saves what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, dnll: np.ndarray | float) -> np.ndarray:
        """dL/d out for L = Σ_n dnll_n · nll_n (``dnll`` a scalar or (N,))."""
        raise NotImplementedError

    def log_normalizer(self, pixels: int) -> float:
        """The constant that makes −nll a normalised log-density: log p(x|z) = −nll + this."""
        return 0.0

    def log_prob(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """log p(x|z) per image, (N,), with the normalising constant. Saves nothing."""
        nll = self.nll(x, out)
        self.cache = None
        return self.log_normalizer(x[0].size) - nll

    def _saved(self):
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before nll")
        return self.cache

    @staticmethod
    def _check(x: np.ndarray, out: np.ndarray) -> None:
        if x.shape != out.shape:
            raise ValueError(
                f"likelihood: the decoder gives shape {out.shape[1:]} per image, the data "
                f"{x.shape[1:]} (batches {out.shape[0]} and {x.shape[0]})"
            )


class Gaussian(Likelihood):
    """N(x; x̂, cI) with x̂ = sigmoid(out) or x̂ = out: the report's decoder, c fixed."""

    name = "gaussian"

    def __init__(self, c: float = 0.05, output_activation: str = "sigmoid") -> None:
        super().__init__()
        if not c > 0:
            raise ValueError(f"Gaussian likelihood: the balance c must be > 0, got {c}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"Gaussian likelihood: output_activation must be one of "
                             f"{OUTPUT_ACTIVATIONS}, got {output_activation!r}")
        self.c = float(c)
        self.sigmoid = Sigmoid() if output_activation == "sigmoid" else None

    def mean(self, out: np.ndarray) -> np.ndarray:
        return self.sigmoid.forward(out) if self.sigmoid else out

    def nll(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        self._check(x, out)
        diff = self.mean(out) - x
        self.cache = diff
        return _per_image_sum(diff * diff) / (2 * self.c)

    def backward(self, dnll: np.ndarray | float) -> np.ndarray:
        """d nll / d x̂ = (x̂ − x) / c, then back through the sigmoid."""
        diff = self._saved()
        scale = np.asarray(dnll, dtype=diff.dtype).reshape((-1,) + (1,) * (diff.ndim - 1))
        dx_hat = diff * (scale / self.c)
        return self.sigmoid.backward(dx_hat) if self.sigmoid else dx_hat

    def log_normalizer(self, pixels: int) -> float:
        return -0.5 * pixels * math.log(2 * math.pi * self.c)


class Bernoulli(Likelihood):
    """Bernoulli(x; sigmoid(out)) per pixel, ``out`` the logits; x in [0, 1] (binary for a
    true probability)."""

    name = "bernoulli"

    def __init__(self) -> None:
        super().__init__()
        self.sigmoid = Sigmoid()

    def mean(self, out: np.ndarray) -> np.ndarray:
        return self.sigmoid.forward(out)

    def nll(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        self._check(x, out)
        softplus = np.maximum(out, 0) + np.log1p(np.exp(-np.abs(out)))
        self.cache = (x, out)
        return _per_image_sum(softplus - x * out)

    def backward(self, dnll: np.ndarray | float) -> np.ndarray:
        """d/d out [softplus(out) − x·out] = sigmoid(out) − x."""
        x, out = self._saved()
        scale = np.asarray(dnll, dtype=out.dtype).reshape((-1,) + (1,) * (out.ndim - 1))
        return (self.sigmoid.forward(out) - x) * scale


def make_likelihood(
    name: str, c: float = 0.05, output_activation: str = "sigmoid"
) -> Likelihood:
    """A likelihood by name: "gaussian" (uses c and the output activation) or "bernoulli"."""
    if name == "gaussian":
        return Gaussian(c, output_activation)
    if name == "bernoulli":
        if output_activation != "sigmoid":
            raise ValueError("the Bernoulli likelihood reads the decoder's outputs as logits: "
                             f"output_activation must be 'sigmoid', got {output_activation!r}")
        return Bernoulli()
    raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {name!r}")
