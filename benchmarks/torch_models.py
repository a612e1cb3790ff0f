"""The report's two VAEs in PyTorch, layer for layer as numpyvae/models/architectures.py
builds them.

Only the benchmark's ``--compare-torch`` uses this file: PyTorch is never a
dependency of numpyvae (``pip install -e ".[bench]"`` brings it in). The loss is
the one numpyvae/models/vae.py computes, so both frameworks do the same work per step:

    [m, h] = encoder(x),  v = softplus(h) + 1e-8,  z = m + √v ⊙ ε,  x̂ = sigmoid(decoder(z))
    loss   = mean over the batch of  Σ (x − x̂)² / (2c)  +  ½ Σ (v + m² − 1 − log v)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

VARIANCE_FLOOR = 1e-8
PIXELS = 784
DEFAULT_HIDDEN = (300, 100, 10)


def _mlp(widths: Sequence[int]) -> list[nn.Module]:
    """Linear layers through ``widths`` with ELU between (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ELU())
    return layers


def _block(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.ELU()]


def mlp_parts(latent_dim: int, hidden: Sequence[int] = DEFAULT_HIDDEN) -> tuple[nn.Module, ...]:
    """Encoder 784-300-100-10-2z and its mirror, as build_mlp_vae."""
    encoder = nn.Sequential(nn.Flatten(), *_mlp((PIXELS, *hidden, 2 * latent_dim)))
    decoder = nn.Sequential(*_mlp((latent_dim, *hidden[::-1], PIXELS)),
                            nn.Unflatten(1, (1, 28, 28)))
    return encoder, decoder


def cnn_parts(latent_dim: int) -> tuple[nn.Module, ...]:
    """Encoder and decoder as build_cnn_vae: Dense(z→512) → (32, 4, 4) → three ConvT → Conv."""
    encoder = nn.Sequential(
        *_block(nn.Conv2d(1, 32, 3, stride=2, padding=1), 32),
        *_block(nn.Conv2d(32, 64, 3, stride=2, padding=1), 64),
        *_block(nn.Conv2d(64, 32, 3, stride=2, padding=1), 32),
        nn.Flatten(),
        nn.Linear(512, 2 * latent_dim),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 512),
        nn.Unflatten(1, (32, 4, 4)),
        *_block(nn.ConvTranspose2d(32, 64, 3, stride=2, padding=1), 64),
        *_block(nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), 32),
        *_block(nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), 32),
        nn.Conv2d(32, 1, 3, stride=1, padding=1),
    )
    return encoder, decoder


class TorchVAE(nn.Module):
    """Encoder, reparameterization, decoder and the mean loss of numpyvae.models.vae.VAE."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 c: float = 0.05) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim, self.c = latent_dim, c

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        out = self.encoder(x)
        m, h = out[:, : self.latent_dim], out[:, self.latent_dim :]
        v = F.softplus(h) + VARIANCE_FLOOR
        z = m + torch.sqrt(v) * torch.randn_like(m)
        x_hat = torch.sigmoid(self.decoder(z))
        recon = ((x - x_hat) ** 2).sum(dim=(1, 2, 3)) / (2 * self.c)
        kl = 0.5 * (v + m * m - 1 - torch.log(v)).sum(dim=1)
        return (recon + kl).mean()


def build_torch_vae(arch: str, latent_dim: int, c: float = 0.05) -> TorchVAE:
    """Either model by name, float32, in training mode: ``arch`` is "mlp" or "cnn"."""
    parts = {"mlp": mlp_parts, "cnn": cnn_parts}
    if arch not in parts:
        raise ValueError(f"unknown architecture {arch!r}: expected one of mlp, cnn")
    return TorchVAE(*parts[arch](latent_dim), latent_dim, c=c).float().train()
