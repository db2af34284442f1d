"""Generated two-class and few-class datasets in 2-D: circles, moons, spirals, xor and blobs. Train
and test are independent draws (see :class:`~initbench.data.base.Synthetic`).

scikit-learn is imported inside the samplers: it takes over a second to import, and listing the
registry (``initbench list``) should not pay for it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from initbench.data.base import DATASETS, Synthetic


@DATASETS.register("circles")
class Circles(Synthetic):
    """Two concentric circles (scikit-learn ``make_circles``): binary, 2-D, 300 train / 100 test.

    Label 0 is the outer circle (radius 1), label 1 the inner one (radius ``factor``), half of
    each split on each. The defaults are the deeplearning.ai "Initialization" exercise's: 300
    training and 100 test points with noise 0.05 (and scikit-learn's default factor 0.8).
    scikit-learn spaces the angles evenly, so with ``noise=0`` test points can repeat training points.
    """

    formula = "x = r·(cos θ, sin θ) + noise·ε,  r = 1 (y = 0) or factor (y = 1),  θ evenly spaced"
    noise: float = Field(default=0.05, ge=0.0)
    factor: float = Field(default=0.8, ge=0.0, lt=1.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        # Deferred for start-up time: loads pandas, rich, scipy and sklearn.
        from sklearn.datasets import make_circles

        return make_circles(n, noise=self.noise, factor=self.factor, random_state=random_state)


@DATASETS.register("moons")
class Moons(Synthetic):
    """Two interleaving half circles (scikit-learn ``make_moons``): binary, 2-D, 300 train / 100 test.

    Label 0 is the upper moon (unit circle about the origin), label 1 the lower one (unit circle
    about (1, 0.5)), half of each split on each. Inputs span about [−1, 2] × [−0.5, 1].
    As with circles, ``noise=0`` puts the points on a fixed grid, shared by train and test.
    """

    formula = "x = (cos t, sin t) (y = 0) or (1 − cos t, 0.5 − sin t) (y = 1), t ∈ [0, π] evenly spaced, + noise·ε"
    noise: float = Field(default=0.1, ge=0.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        # Deferred for start-up time: loads pandas, rich, scipy and sklearn.
        from sklearn.datasets import make_moons

        return make_moons(n, noise=self.noise, random_state=random_state)


@DATASETS.register("spirals")
class Spirals(Synthetic):
    """Two interleaved spirals: binary, 2-D, 300 train / 100 test, half of each split per arm.

    A point at t ~ U(0, 1) along arm y lies at radius t and angle 2π·turns·t + π·y, so the two arms
    are half a turn apart and the inputs lie in the unit disc (plus noise). Both arms start at the
    origin, where no classifier can tell them apart; more ``turns`` make the task harder.
    """

    formula = "x = t·(cos θ, sin θ) + noise·ε,  θ = 2π·turns·t + π·y,  t ~ U(0, 1)"
    noise: float = Field(default=0.05, ge=0.0)
    turns: float = Field(default=1.5, gt=0.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(random_state)
        labels = rng.permutation(np.arange(n) % 2)
        t = rng.uniform(0.0, 1.0, n)
        angle = 2 * np.pi * self.turns * t + np.pi * labels
        points = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return points + self.noise * rng.standard_normal((n, 2)), labels


@DATASETS.register("xor")
class Xor(Synthetic):
    """The XOR problem: binary, 2-D, 300 train / 100 test; no linear model can solve it.

    Inputs are uniform on [−1, 1]²; the label is 1 where x₁ and x₂ have the same sign. The label
    is decided on the clean input, before ``noise`` blurs it, so noise makes labels overlap.
    """

    formula = "x ~ U([−1, 1]²),  y = [x₁·x₂ > 0],  then x ← x + noise·ε"
    noise: float = Field(default=0.0, ge=0.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(random_state)
        clean = rng.uniform(-1.0, 1.0, (n, 2))
        labels = (clean[:, 0] * clean[:, 1] > 0).astype(np.int64)
        return clean + self.noise * rng.standard_normal((n, 2)), labels


@DATASETS.register("blobs")
class Blobs(Synthetic):
    """Gaussian blobs (scikit-learn ``make_blobs``): multiclass, 2-D, 300 train / 100 test.

    The ``centers`` cluster centers are drawn once per data seed, uniformly in [−10, 10]²
    (scikit-learn's default box), and shared by train and test; each split divides its points
    evenly among them. Inputs are standardized with the mixture's own mean and std, computed from
    the centers and ``cluster_std`` rather than from a sample, so both splits get the same
    transform. Two centers make a binary task (one logit), like any two-class dataset.
    """

    formula = "x ~ N(c_y, cluster_std²·I),  c_k ~ U([−10, 10]²),  then standardized"
    centers: int = Field(default=3, ge=2)
    cluster_std: float = Field(default=1.0, ge=0.0)

    def n_classes(self) -> int | None:
        return self.centers

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        # Deferred for start-up time: loads pandas, rich, scipy and sklearn.
        from sklearn.datasets import make_blobs

        centers = np.random.default_rng(shared_state).uniform(-10.0, 10.0, (self.centers, 2))
        points, labels = make_blobs(n, centers=centers, cluster_std=self.cluster_std, random_state=random_state)
        # Law of total variance for an equal-weight mixture: Var x = cluster_std² + Var(centers).
        std = np.sqrt(self.cluster_std**2 + centers.var(axis=0))
        return (points - centers.mean(axis=0)) / std, labels
