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

from ..nn.activations import Sigmoid, sigmoid, sigmoid_fast, softplus
from ..nn.layer import FLOAT_DTYPES, pending_backward_kept
from ..nn.lazy_kernels import lazy

elementwise = lazy("elementwise")

LIKELIHOODS = ("gaussian", "bernoulli")
OUTPUT_ACTIVATIONS = ("sigmoid", "identity")


def _sigmoid(out: np.ndarray) -> np.ndarray:
    """σ by the fused kernel when the Sigmoid layers use theirs (``Sigmoid.use_kernels``),
    else in NumPy: with the layers' kernels off, the likelihoods compile nothing either."""
    return sigmoid_fast(out) if Sigmoid.use_kernels else sigmoid(out)


def _per_image_sum(a: np.ndarray) -> np.ndarray:
    return np.sum(a.reshape(a.shape[0], -1), axis=1)


class Likelihood:
    """The interface, a layer's contract with the data x as a fixed second input:
    ``nll(x, out)`` is the forward (keeps a cache), ``backward(dnll)`` returns dL/d out;
    ``mean`` and ``log_prob`` are pure functions of their arguments (no cache)."""

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
        """log p(x|z) per image, (N,), with the normalising constant. Saves nothing: a
        pending ``backward`` is unaffected."""
        with pending_backward_kept(self):
            return self.log_normalizer(x[0].size) - self.nll(x, out)

    def _saved(self):
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before nll: "
                               "run nll(x, out) first")
        return self.cache

    @staticmethod
    def _weights(dnll: np.ndarray | float, out: np.ndarray) -> np.ndarray:
        """dnll as an array that broadcasts against out (N, ...): one weight per image."""
        w = np.asarray(dnll, dtype=out.dtype)
        if w.shape not in ((), (out.shape[0],)):
            raise ValueError(f"likelihood backward: expected dnll of shape ({out.shape[0]},) "
                             f"or a scalar, got shape {w.shape}")
        return w.reshape((-1,) + (1,) * (out.ndim - 1))

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
        self.squash = output_activation == "sigmoid"

    def mean(self, out: np.ndarray) -> np.ndarray:
        return _sigmoid(out) if self.squash else out

    def nll(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        self._check(x, out)
        if self._fused(x, out):  # the same math in one pass: elementwise.sigmoid_squared_error
            x_hat, sq = elementwise.sigmoid_squared_error(out, x)
            self.cache = (None, x_hat, x)
            return sq / (2 * self.c)
        x_hat = self.mean(out)
        diff = x_hat - x
        self.cache = (diff, x_hat, None)
        return _per_image_sum(diff * diff) / (2 * self.c)

    def _fused(self, x: np.ndarray, out: np.ndarray) -> bool:
        """Does the kernel path run: σ output, the Sigmoid layers' kernels on, one float dtype?"""
        return (self.squash and Sigmoid.use_kernels and out.dtype in FLOAT_DTYPES
                and x.dtype == out.dtype)

    def backward(self, dnll: np.ndarray | float) -> np.ndarray:
        """dnll (N,) or a scalar → d out (N, C, H, W).

        d nll / d x̂ = (x̂ − x) / c;  with x̂ = σ(out), dx̂/d out = σ'(out) = x̂(1 − x̂).
        """
        diff, x_hat, x = self._saved()
        w = self._weights(dnll, x_hat)
        if diff is None:
            k = np.broadcast_to((w / self.c).reshape(-1), x_hat.shape[:1])
            return elementwise.sigmoid_squared_error_backward(x_hat, x, np.ascontiguousarray(k))
        dx_hat = diff * (w / self.c)
        return dx_hat * x_hat * (1 - x_hat) if self.squash else dx_hat

    def log_normalizer(self, pixels: int) -> float:
        return -0.5 * pixels * math.log(2 * math.pi * self.c)


class Bernoulli(Likelihood):
    """Bernoulli(x; sigmoid(out)) per pixel, ``out`` the logits; x in [0, 1] (binary for a
    true probability)."""

    name = "bernoulli"

    def mean(self, out: np.ndarray) -> np.ndarray:
        return _sigmoid(out)

    def nll(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        self._check(x, out)
        self.cache = (x, out)
        return _per_image_sum(softplus(out) - x * out)

    def backward(self, dnll: np.ndarray | float) -> np.ndarray:
        """dnll (N,) or a scalar → d out (N, C, H, W).

        d/d out [softplus(out) − x·out] = σ(out) − x.
        """
        x, out = self._saved()
        return (_sigmoid(out) - x) * self._weights(dnll, out)


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
