"""What every engine runs: a :class:`Run`, one (scheme, seed) pair with its bias scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

from initbench.schemes.base import InitScheme


@dataclass(frozen=True)
class Run:
    """One network to simulate: a resolved scheme, its label, and the seed of its generator."""

    label: str
    seed: int
    scheme: InitScheme
    bias: InitScheme | None  # None: the network has no biases
