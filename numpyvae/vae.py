"""The Variational Autoencoder: encoder, reparameterization, decoder, loss, and backward.

Forward, for a batch x of N images (the report, section 3):

    [m, h] = encoder(x)                 (N, 2z) split into mean m and h
    v      = softplus(h) + 1e-8         variance, kept positive
    z      = m + sqrt(v) ⊙ ε            ε ~ N(0, I): the reparameterization trick
    x̂      = sigmoid(decoder(z))        reconstruction in [0, 1]

Loss per image (a Gaussian decoder N(x̂, cI) and the prior N(0, I)):

    recon = Σ_pixels (x − x̂)² / (2c)
    KL    = ½ Σ_latent (v + m² − 1 − log v)

The loss of a batch is the mean over its images, as in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers.activations import Sigmoid, Softplus
from .layers.base import Layer

VARIANCE_FLOOR = 1e-8
OUTPUT_ACTIVATIONS = ("sigmoid", "identity")


@dataclass
class Losses:
    """Mean over the batch of each term: loss = recon + kl."""

    loss: float
    recon: float
    kl: float

    def as_dict(self) -> dict[str, float]:
        return {"loss": self.loss, "recon": self.recon, "kl": self.kl}


class VAE:
    """A VAE around any encoder (x → (N, 2z)) and decoder (z → x̂'s pre-activation).

    Shapes: x (N, 1, 28, 28) for the report's models; z (N, latent_dim).
    """

    def __init__(
        self,
        encoder: Layer,
        decoder: Layer,
        latent_dim: int,
        c: float = 0.05,
        output_activation: str = "sigmoid",
    ) -> None:
        if latent_dim < 1:
            raise ValueError(f"VAE: latent_dim must be >= 1, got {latent_dim}")
        if not c > 0:
            raise ValueError(f"VAE: the balance c must be > 0, got {c}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"VAE: output_activation must be one of {OUTPUT_ACTIVATIONS}, "
                f"got {output_activation!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(latent_dim)
        self.c = float(c)
        self.output_activation = output_activation
        self.softplus = Softplus()
        self.sigmoid = Sigmoid() if output_activation == "sigmoid" else None
        self.cache: dict[str, np.ndarray] | None = None

    # -- modes and parameters ---------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        return self.parameters()[0][0].dtype

    def train(self) -> VAE:
        self.encoder.train()
        self.decoder.train()
        return self

    def eval(self) -> VAE:
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

    # -- inference ----------------------------------------------------------
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The posterior q(z|x) = N(m, v): returns m and v, each (N, latent_dim)."""
        out = self.encoder.forward(x)
        self._check_encoder_output(out, x)
        m, h = out[:, : self.latent_dim], out[:, self.latent_dim :]
        return m, self.softplus.forward(h) + VARIANCE_FLOOR

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The decoder's mean f(z): (N, latent_dim) → images."""
        logits = self.decoder.forward(np.ascontiguousarray(z, dtype=self.dtype))
        return self.sigmoid.forward(logits) if self.sigmoid else logits

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Decode n draws from the prior z ~ N(0, I)."""
        rng = np.random.default_rng() if rng is None else rng
        return self.decode(rng.standard_normal((n, self.latent_dim), dtype=self.dtype))

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Decode the posterior mean: the deterministic reconstruction of x."""
        m, _ = self.encode(x)
        return self.decode(m)

    # -- training: forward to the loss, backward from it -------------------
    def forward(
        self, x: np.ndarray, eps: np.ndarray | None = None, rng: np.random.Generator | None = None
    ) -> Losses:
        """Run the model on a batch and return its mean losses.

        ε comes from the caller when given (the gradient check holds it fixed),
        else from ``rng``.
        """
        n, z_dim = x.shape[0], self.latent_dim
        out = self.encoder.forward(x)
        self._check_encoder_output(out, x)
        m, h = out[:, :z_dim], out[:, z_dim:]
        if eps is None:
            rng = np.random.default_rng() if rng is None else rng
            eps = rng.standard_normal((n, z_dim), dtype=out.dtype)
        elif eps.shape != (n, z_dim):
            raise ValueError(f"VAE.forward: eps must have shape {(n, z_dim)}, got {eps.shape}")
        eps = eps.astype(out.dtype, copy=False)
        v = self.softplus.forward(h) + VARIANCE_FLOOR
        s = np.sqrt(v)
        z = m + s * eps
        logits = self.decoder.forward(z)
        x_hat = self.sigmoid.forward(logits) if self.sigmoid else logits
        if x_hat.shape != x.shape:
            raise ValueError(
                f"VAE: the decoder gives shape {x_hat.shape[1:]} per image, the data "
                f"{x.shape[1:]}"
            )
        diff = x_hat - x
        recon = np.sum(diff * diff, axis=tuple(range(1, x.ndim))) / (2 * self.c)
        kl = 0.5 * np.sum(v + m * m - 1 - np.log(v), axis=1)
        self.cache = {"x": x, "m": m, "v": v, "s": s, "eps": eps, "diff": diff}
        recon_mean, kl_mean = float(np.mean(recon)), float(np.mean(kl))
        return Losses(recon_mean + kl_mean, recon_mean, kl_mean)

    def backward(self) -> None:
        """Write dL/dθ into every layer's grads, for L = mean over the batch.

        dL/dx̂ = (x̂ − x) / (cN);  then back through the sigmoid and the decoder to dL/dz.
        dL/dm = dL/dz + m/N;  dL/dv = dL/dz ⊙ ε / (2√v) + (1 − 1/v) / (2N);
        dL/dh = dL/dv ⊙ softplus'(h), and [dL/dm, dL/dh] goes back through the encoder.
        """
        if self.cache is None:
            raise RuntimeError("VAE.backward called before forward: run forward(x) first")
        m, v, s, eps, diff = (self.cache[k] for k in ("m", "v", "s", "eps", "diff"))
        n = diff.shape[0]
        dx_hat = diff * (1 / (self.c * n))
        dlogits = self.sigmoid.backward(dx_hat) if self.sigmoid else dx_hat
        dz = self.decoder.backward(dlogits)
        dm = dz + m * (1 / n)
        dv = dz * eps / (2 * s) + (1 - 1 / v) * (0.5 / n)
        dh = self.softplus.backward(dv)
        self.encoder.backward(np.concatenate([dm, dh], axis=1))

    def _check_encoder_output(self, out: np.ndarray, x: np.ndarray) -> None:
        if out.ndim != 2 or out.shape[1] != 2 * self.latent_dim:
            raise ValueError(
                f"VAE: the encoder must output (N, 2·latent_dim) = (N, {2 * self.latent_dim}), "
                f"got {out.shape} for input {x.shape}"
            )

    def __repr__(self) -> str:
        enc = repr(self.encoder).replace("\n", "\n  ")
        dec = repr(self.decoder).replace("\n", "\n  ")
        return (
            f"VAE(latent_dim={self.latent_dim}, c={self.c}, "
            f"output={self.output_activation})  # {self.num_params():,} params\n"
            f"  (encoder): {enc}\n  (decoder): {dec}"
        )
