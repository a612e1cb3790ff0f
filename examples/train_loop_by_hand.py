"""The report's MLP VAE on MNIST trained by a loop you can see: nn/ layers, forward, backward,
an Adam step, the loss.   python examples/train_loop_by_hand.py [steps, default one epoch]"""

import sys
from itertools import islice

import numpy as np

from numpyvae import data
from numpyvae.nn import ELU, Adam, Dense, Flatten, Reparameterize, Reshape, Sequential, Sigmoid

Z, C, rng = 2, 0.05, np.random.default_rng(0)  # latent size, the Gaussian decoder's variance
x_train, _ = data.load("mnist", "train")  # (60000, 1, 28, 28) float32 in [0, 1]
encoder = Sequential(Flatten(), Dense(784, 300, rng=rng), ELU(), Dense(300, 100, rng=rng), ELU(),
                     Dense(100, 10, rng=rng), ELU(), Dense(10, 2 * Z, rng=rng))  # → [m, h]
sampler = Reparameterize()  # [m, h] → [z, kl]: z = m + √v ε, kl per latent dimension
decoder = Sequential(Dense(Z, 10, rng=rng), ELU(), Dense(10, 100, rng=rng), ELU(),
                     Dense(100, 300, rng=rng), ELU(), Dense(300, 784, rng=rng), Sigmoid(),
                     Reshape(1, 28, 28))  # z → x̂
adam = Adam(encoder.parameters() + decoder.parameters(), lr=2.5e-3)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else None  # None: the whole epoch
for step, idx in enumerate(islice(data.batches(len(x_train), 256), steps)):
    x, n = x_train[idx], len(idx)
    sampler.set_noise(rng.standard_normal((n, Z), dtype=np.float32))
    z_kl = sampler.forward(encoder.forward(x))
    x_hat = decoder.forward(np.ascontiguousarray(z_kl[:, :Z]))
    recon = np.sum((x - x_hat) ** 2, axis=(1, 2, 3)) / (2 * C)  # −log p(x|z) + const
    loss = np.mean(recon + np.sum(z_kl[:, Z:], axis=1))  # −ELBO, the mean over the batch
    dz = decoder.backward((x_hat - x) / (C * n))  # d loss / d x̂, then back through the decoder
    encoder.backward(sampler.backward(np.concatenate([dz, np.full_like(dz, 1 / n)], axis=1)))
    adam.step()
    print(f"step {step + 1:4d}  loss {loss:7.2f}")
