"""Sequential: a chain of layers, run forwards in order and backwards in reverse."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import batchnorm_elu
from .layer import Layer


class Sequential(Layer):
    """y = f_n(...f_2(f_1(x))). Backward is the chain rule: dx = J_1ᵀ(J_2ᵀ(...J_nᵀ dy))."""

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: item {i} is a {type(layer).__name__}, not a Layer")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """A BatchNorm2d followed by an ELU, both with ``use_kernels`` on, run as one kernel."""
        i = 0
        while i < len(self.layers):
            pair = self.layers[i:i + 2]
            if len(pair) == 2 and batchnorm_elu.fusable(*pair):
                x, i = batchnorm_elu.forward(*pair, x), i + 2
            else:
                x, i = self.layers[i].forward(x), i + 1
        return x

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The same chain through each layer's ``infer``: no cache kept, no buffer moved."""
        for layer in self.layers:
            x = layer.infer(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        i = len(self.layers) - 1
        while i >= 0:
            if i > 0 and batchnorm_elu.pending(self.layers[i - 1], self.layers[i]):
                dout, i = batchnorm_elu.backward(self.layers[i - 1], self.layers[i], dout), i - 2
            else:
                dout, i = self.layers[i].backward(dout), i - 1
            if dout is None:  # a layer whose input needs no gradient: none below it learns
                return None
        return dout

    def train(self) -> Sequential:
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self) -> Sequential:
        self.training = False
        for layer in self.layers:
            layer.eval()
        return self

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [pair for layer in self.layers for pair in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [
            (f"{i}.{name}", p, g)
            for i, layer in enumerate(self.layers)
            for name, p, g in layer.named_parameters()
        ]

    def named_arrays(self) -> dict[str, np.ndarray]:
        return {
            f"{i}.{name}": arr
            for i, layer in enumerate(self.layers)
            for name, arr in layer.named_arrays().items()
        }

    def num_params(self) -> int:
        return sum(layer.num_params() for layer in self.layers)

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()

    def __getitem__(self, i: int) -> Any:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        lines = [f"Sequential(  # {self.num_params():,} params"]
        for i, layer in enumerate(self.layers):
            body = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({i}): {body}")
        lines.append(")")
        return "\n".join(lines)
