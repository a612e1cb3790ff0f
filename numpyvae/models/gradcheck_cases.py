"""Gradient-check cases for the VAE family: the likelihoods and whole models.

The same form as ``numpyvae.nn.gradcheck_cases`` (a float64 layer and its input):
a likelihood or a model is wrapped as a layer. ``all_cases()`` joins the nn list
and this one; the report and the tests run it.
"""

from __future__ import annotations

import numpy as np

from ..nn.gradcheck_cases import F64, Case
from ..nn.gradcheck_cases import cases as nn_cases
from ..nn.layer import Layer
from .architectures import IMAGE_SHAPE, build_cnn_vae, build_mlp_vae
from .autoencoder import build_mlp_autoencoder
from .encoder_decoder import EncoderDecoder
from .likelihoods import Bernoulli, Gaussian, Likelihood
from .vae import VAE


class NLLOfDecoderOutput(Layer):
    """A likelihood as a layer: decoder outputs (N, C, H, W) → nll per image (N, 1), the
    data x held fixed, so the gradient check of p(x|z) runs like any layer's (the random
    G weighs each image's nll differently, as a batch mean's 1/N does uniformly)."""

    def __init__(self, likelihood: Likelihood, x: np.ndarray) -> None:
        super().__init__(dtype=F64)
        self.likelihood, self.x = likelihood, x

    def forward(self, out: np.ndarray) -> np.ndarray:
        return self.likelihood.nll(self.x, out)[:, None]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.likelihood.backward(np.ascontiguousarray(dout[:, 0]))


class LossOfModel(Layer):
    """A whole model as a layer: images x (N, 1, 28, 28) → its mean objective (1, 1), ε
    held fixed; the parameters are the model's. ``backward(G)`` is ``model.backward(dloss=G)``.
    The objective is what backward differentiates: −ELBO itself at β = 1 without free bits.

    Nothing needs the gradient with respect to the images (the encoder's first layer
    skips it), so backward returns None and the check covers every parameter.
    """

    def __init__(self, model: EncoderDecoder, eps: np.ndarray) -> None:
        super().__init__(dtype=F64)
        self.model, self.eps = model, eps
        self.needs_input_grad = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.array([[self.model.forward(x, self.eps).objective]])

    def backward(self, dout: np.ndarray) -> None:
        self.model.backward(float(dout[0, 0]))
        return None

    def named_parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return self.model.named_parameters()

    def named_arrays(self) -> dict[str, np.ndarray]:
        return self.model.named_arrays()


def _likelihood(likelihood: Likelihood, rng: np.random.Generator, binary: bool
                ) -> tuple[Layer, np.ndarray]:
    x = rng.uniform(0, 1, (3, 1, 4, 5))
    x = (x < 0.5).astype(F64) if binary else x
    return NLLOfDecoderOutput(likelihood, x), 3 * rng.standard_normal(x.shape)


def _model(model: EncoderDecoder, rng: np.random.Generator, n: int) -> tuple[Layer, np.ndarray]:
    """The model's loss at n images with pixels in [0.35, 0.65], near a fresh model's x̂.

    The finite difference of a loss summed over 784 pixels is limited by rounding
    (h = 1e-5 in float64); images near x̂ keep the loss small next to its gradients
    (loss ∝ δ², gradient ∝ δ for residuals δ), which leaves the errors ~10× below the
    tolerance at any seed, where images in [0, 1] come within 10% of it.
    """
    eps = rng.standard_normal((n, model.latent_dim))
    return LossOfModel(model, eps), rng.uniform(0.35, 0.65, (n, *IMAGE_SHAPE))


def with_objective(vae: VAE, beta: float = 1.0, free_bits: float = 0.0) -> VAE:
    """``vae`` set to optimise recon + β·Σ_j max(λ, KL_j) (λ = ``free_bits``)."""
    vae.beta, vae.free_bits = beta, free_bits
    return vae


def free_bits_away_from_kink(vae: VAE, x: np.ndarray, eps: np.ndarray, margin: float = 1e-3
                             ) -> float:
    """A λ between two dimensions' batch-mean KL_j, none of them within ``margin`` of it:
    the largest gap's midpoint, so some dimensions sit below λ and some above. Raises
    ValueError when no gap is wider than 2·margin (the check would sit on the kink)."""
    m_h = vae._encoder_output(x, None, infer=True)
    vae.reparameterize.set_noise(eps.astype(m_h.dtype))
    kl_dims = vae.reparameterize.infer(m_h)[:, vae.latent_dim:]
    kl_j = np.sort(np.mean(kl_dims, axis=0))
    gaps = np.diff(kl_j)
    k = int(np.argmax(gaps))
    if gaps[k] <= 2 * margin:
        raise ValueError(f"free_bits_away_from_kink: no gap between the KL_j {kl_j} is wider "
                         f"than {2 * margin}")
    return float((kl_j[k] + kl_j[k + 1]) / 2)


def _free_bits_model(rng: np.random.Generator, n: int) -> tuple[Layer, np.ndarray]:
    """A VAE with λ set between its dimensions' KL_j (some below λ, some above), z = 4."""
    vae = build_mlp_vae(4, hidden=(12, 6), dtype=F64, rng=rng)
    layer, x = _model(vae, rng, n)
    with_objective(vae, beta=1.5, free_bits=free_bits_away_from_kink(vae, x, layer.eps))
    return layer, x


def model_cases() -> list[Case]:
    """p(x|z) in each form, and each model's whole loss with respect to every parameter."""
    return [
        Case("Gaussian p(x|z)", "c = 0.05, sigmoid output, nll per image",
             lambda r: _likelihood(Gaussian(0.05), r, binary=False)),
        Case("Gaussian p(x|z)", "c = 0.7, identity output, nll per image",
             lambda r: _likelihood(Gaussian(0.7, "identity"), r, binary=False)),
        Case("Bernoulli p(x|z)", "logits, binary x, nll per image",
             lambda r: _likelihood(Bernoulli(), r, binary=True)),
        Case("VAE", "MLP 784-12-6-2z, x (5, 1, 28, 28), ε fixed",
             lambda r: _model(build_mlp_vae(2, hidden=(12, 6), dtype=F64, rng=r), r, 5),
             max_entries=40),
        Case("VAE", "MLP, β = 4",
             lambda r: _model(with_objective(build_mlp_vae(2, hidden=(12, 6), dtype=F64, rng=r),
                                             beta=4.0), r, 5),
             max_entries=40),
        Case("VAE", "MLP, during KL warm-up (β = 0.3)",
             lambda r: _model(with_objective(build_mlp_vae(2, hidden=(12, 6), dtype=F64, rng=r),
                                             beta=0.3), r, 5),
             max_entries=40),
        Case("VAE", "MLP, z = 4, free bits λ between the KL_j, β = 1.5",
             lambda r: _free_bits_model(r, 5), max_entries=40),
        Case("VAE", "MLP, identity output",
             lambda r: _model(build_mlp_vae(2, hidden=(6,), dtype=F64, rng=r,
                                            output_activation="identity"), r, 3),
             max_entries=40),
        Case("VAE", "CNN, BN in train mode, x (2, 1, 28, 28)",
             lambda r: _model(build_cnn_vae(2, dtype=F64, rng=r), r, 2), max_entries=10),
        Case("Autoencoder", "MLP 784-12-6-z, x (5, 1, 28, 28)",
             lambda r: _model(build_mlp_autoencoder(2, hidden=(12, 6), dtype=F64, rng=r), r, 5),
             max_entries=40),
    ]


def all_cases() -> list[Case]:
    """The nn layers' cases, then the VAE family's: what the report and the tests run."""
    return nn_cases() + model_cases()
