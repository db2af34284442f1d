"""Grids of (σ_w², σ_b²) written as text (``0.5:4:36`` or ``1,2,3``), for the phase diagram.
"""

from __future__ import annotations

import math

import numpy as np

from initbench.core.errors import InitbenchError

#: The most grid points a diagram computes: the theory takes up to ~0.1 s a point (tanh, one
#: busy core), so this is a quarter of an hour, and a typo like N = 1000000 is refused at once.
MAX_GRID_POINTS = 10_000


def parse_grid(text: str, option: str) -> np.ndarray:
    """``START:STOP:N`` → N evenly spaced values from START to STOP inclusive (N ≥ 2, finite values
    ≥ 0); a single value ``V`` → that value alone (a diagram along the other axis)."""
    parts = text.split(":")
    if len(parts) == 1:
        try:
            value = float(text)
        except ValueError:
            raise InitbenchError(f"{option} '{text}' is neither a number nor START:STOP:N.", hint=f"For example {option} 0.05 or {option} 0.5:4:36.") from None
        if not (math.isfinite(value) and value >= 0):
            raise InitbenchError(f"{option} '{text}' must be a finite number ≥ 0.")
        return np.array([value])
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise InitbenchError(f"{option} '{text}' is not START:STOP:N.", hint=f"For example {option} 0.5:4:36.") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or count < 2 or start < 0 or stop <= start:
        raise InitbenchError(f"{option} '{text}' needs finite 0 ≤ START < STOP and N ≥ 2.")
    if count > MAX_GRID_POINTS:
        raise InitbenchError(f"{option} '{text}' asks for {count} values; a diagram has at most {MAX_GRID_POINTS} points.")
    return np.linspace(start, stop, count)
