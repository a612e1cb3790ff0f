"""What the VAE and the plain autoencoder share: two networks, p(x|z), labels, plumbing.

The training loop, checkpoints, ``load_run`` and the figures use only this
interface (plus each model's ``forward`` returning ``Losses`` and ``backward``).

A conditional model has ``ConcatLabels`` layers in its encoder and decoder
(``num_classes`` > 0): every method that runs them takes the class labels ``y``
(N,), which are handed to those layers before the networks run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nn.concat_labels import ConcatLabels
from ..nn.layer import Layer
from ..nn.sequential import Sequential
from .likelihoods import LIKELIHOODS, OUTPUT_ACTIVATIONS, Likelihood, make_likelihood

__all__ = ["EncoderDecoder", "Losses", "LIKELIHOODS", "OUTPUT_ACTIVATIONS"]


@dataclass
class Losses:
    """Mean over the batch of each term: loss = recon + kl (−ELBO), and the objective
    the gradient is of (recon + β·KL, or with free bits; the loss itself when not given)."""

    loss: float
    recon: float
    kl: float
    objective: float | None = None

    def __post_init__(self) -> None:
        if self.objective is None:
            self.objective = self.loss

    def as_dict(self) -> dict[str, float]:
        return {"loss": self.loss, "recon": self.recon, "kl": self.kl}


def _label_layers(net: Layer) -> list[ConcatLabels]:
    layers = net.layers if isinstance(net, Sequential) else [net]
    return [layer for layer in layers if isinstance(layer, ConcatLabels)]


def _skip_data_gradient(encoder: Layer) -> None:
    """The gradient with respect to the images is never used: let the encoder's first
    learning layer skip it (a 784×300 product for the MLP, a convolution for the CNN).
    Only layers without parameters may come before it, as nothing there needs a gradient."""
    for layer in encoder.layers if isinstance(encoder, Sequential) else [encoder]:
        if layer.params:
            layer.needs_input_grad = False
            return


class EncoderDecoder:
    """An encoder, a decoder and the decoder's distribution p(x|z) (``likelihoods.py``).

    ``likelihood`` is "gaussian" (the report's: variance c, output activation
    sigmoid or identity) or "bernoulli" (the decoder's outputs are logits).
    """

    def __init__(
        self,
        encoder: Layer,
        decoder: Layer,
        latent_dim: int,
        c: float = 0.05,
        output_activation: str = "sigmoid",
        likelihood: str = "gaussian",
    ) -> None:
        name = type(self).__name__
        if latent_dim < 1:
            raise ValueError(f"{name}: latent_dim must be >= 1, got {latent_dim}")
        # c and output_activation are checked once, by the likelihood that uses them
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(latent_dim)
        self.c = float(c)
        self.output_activation = output_activation
        self.likelihood: Likelihood = make_likelihood(likelihood, c, output_activation)
        self.label_layers = _label_layers(encoder) + _label_layers(decoder)
        sizes = {layer.num_classes for layer in self.label_layers}
        if len(sizes) > 1:
            raise ValueError(f"{name}: the ConcatLabels layers disagree on num_classes: {sizes}")
        self.num_classes = sizes.pop() if sizes else 0
        _skip_data_gradient(encoder)
        self.cache = None

    # -- modes and parameters ---------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        return self.parameters()[0][0].dtype

    @property
    def training(self) -> bool:
        """True in training mode (``train()``), False after ``eval()``."""
        return self.encoder.training

    def train(self) -> EncoderDecoder:
        self.encoder.train()
        self.decoder.train()
        return self

    def eval(self) -> EncoderDecoder:
        self.encoder.eval()
        self.decoder.eval()
        return self

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.encoder.parameters() + self.decoder.parameters()

    def named_parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [(f"encoder.{n}", p, g) for n, p, g in self.encoder.named_parameters()] + [
            (f"decoder.{n}", p, g) for n, p, g in self.decoder.named_parameters()
        ]

    def named_arrays(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by name: what a checkpoint stores."""
        out = {f"encoder.{k}": v for k, v in self.encoder.named_arrays().items()}
        out.update({f"decoder.{k}": v for k, v in self.decoder.named_arrays().items()})
        return out

    def num_params(self) -> int:
        return self.encoder.num_params() + self.decoder.num_params()

    @property
    def encoder_width(self) -> int:
        """Columns of the encoder's output: the code z (N, latent_dim) here."""
        return self.latent_dim

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    # -- the decoder side -----------------------------------------------------
    def decode_logits(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """The decoder's raw outputs for z (N, latent_dim): what p(x|z) is built from."""
        z = np.ascontiguousarray(z, dtype=self.dtype)
        self._set_labels(y, len(z))
        return self.decoder.infer(z)

    def decode(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """The mean of p(x|z): (N, latent_dim) → images."""
        return self.likelihood.mean(self.decode_logits(z, y))

    def sample(
        self, n: int, rng: np.random.Generator | None = None, labels: int | np.ndarray | None = None
    ) -> np.ndarray:
        """Decode n draws from the prior z ~ N(0, I); a conditional model needs ``labels``
        (one class for all, or one per draw)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{type(self).__name__}.sample: expected a number of samples "
                             f"n >= 1, got {n!r}")
        rng = np.random.default_rng() if rng is None else rng
        z = rng.standard_normal((n, self.latent_dim), dtype=self.dtype)
        if labels is not None:
            labels = np.broadcast_to(np.asarray(labels), (n,))
        return self.decode(z, labels)

    def _set_labels(self, y: np.ndarray | None, n: int) -> None:
        """Hand the labels to the ConcatLabels layers; refuse them for a plain model."""
        name = type(self).__name__
        if not self.conditional:
            if y is not None:
                raise ValueError(f"{name}: labels given, but this model is not conditional")
            return
        if y is None:
            raise ValueError(f"{name}: this model is conditional on the class: give labels y "
                             f"(N,) with values in [0, {self.num_classes})")
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"{name}: expected labels of shape ({n},), got {y.shape}")
        for layer in self.label_layers:
            layer.set_labels(y)

    def _encoder_output(self, x: np.ndarray, y: np.ndarray | None, infer: bool) -> np.ndarray:
        """The encoder's output for x (and labels y): through ``infer`` for inference (no
        cache, no buffer moves), through ``forward`` for training. Checks its width."""
        self._set_labels(y, len(x))
        out = self.encoder.infer(x) if infer else self.encoder.forward(x)
        width = self.encoder_width
        if out.ndim != 2 or out.shape[1] != width:
            raise ValueError(
                f"{type(self).__name__}: the encoder must output (N, {width}) for latent_dim "
                f"{self.latent_dim}, got {out.shape} for input {x.shape}"
            )
        return out

    def _saved(self):
        if self.cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: run forward(x) first"
            )
        return self.cache

    def __repr__(self) -> str:
        enc = repr(self.encoder).replace("\n", "\n  ")
        dec = repr(self.decoder).replace("\n", "\n  ")
        return (
            f"{type(self).__name__}(latent_dim={self.latent_dim}, "
            f"likelihood={self.likelihood.name}, c={self.c}, output={self.output_activation}"
            f"{f', num_classes={self.num_classes}' if self.conditional else ''})"
            f"  # {self.num_params():,} params\n"
            f"  (encoder): {enc}\n  (decoder): {dec}"
        )
