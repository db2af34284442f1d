"""Regression on a random teacher network, whose weights the data seed draws."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from initbench.data.base import DATASETS, Synthetic


@DATASETS.register("teacher")
class Teacher(Synthetic):
    """Regression on a random teacher network: 10 inputs, 1 target, 1000 train / 1000 test.

    The teacher is a one-hidden-layer tanh MLP without biases, its weights N(0, 1/fan_in), drawn
    once per data seed and shared by both splits; inputs are N(0, I). There is no accuracy:
    compare runs by loss. The best achievable test MSE is noise², the teacher's own.
    """

    formula = "y = W₂·tanh(W₁·x) + noise·ε,  x ~ N(0, I),  W_l ~ N(0, 1/fan_in)"
    n_train: int = Field(default=1000, ge=1)
    n_test: int = Field(default=1000, ge=1)
    input_dim: int = Field(default=10, ge=1)
    hidden: int = Field(default=32, ge=1)
    output_dim: int = Field(default=1, ge=1)
    noise: float = Field(default=0.1, ge=0.0)

    def n_classes(self) -> int | None:
        return None

    def values_per_row(self) -> int:
        # x, the hidden layer (x·W₁ᵀ and its tanh), the targets and their noise
        return self.input_dim + 2 * self.hidden + 2 * self.output_dim

    def load_bytes(self) -> int:
        return super().load_bytes() + (self.hidden * (self.input_dim + self.output_dim)) * 8

    def weights(self, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's W₁ [hidden, input_dim] and W₂ [output_dim, hidden], drawn from ``shared_state``."""
        rng = np.random.default_rng(shared_state)
        w1 = rng.normal(0.0, 1.0 / np.sqrt(self.input_dim), (self.hidden, self.input_dim))
        w2 = rng.normal(0.0, 1.0 / np.sqrt(self.hidden), (self.output_dim, self.hidden))
        return w1, w2

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        w1, w2 = self.weights(shared_state)
        rng = np.random.default_rng(random_state)
        # x before ε from one stream: changing the noise level leaves the inputs as they were.
        x = rng.standard_normal((n, self.input_dim))
        return x, np.tanh(x @ w1.T) @ w2.T + self.noise * rng.standard_normal((n, self.output_dim))
