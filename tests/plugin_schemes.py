"""User scheme plugins that the tests name by import path (``tests.plugin_schemes:scaled_normal``)."""

from __future__ import annotations

import torch

from initbench.schemes.base import InitScheme

#: Every call of :func:`recording`, as (tensor, context, generator, options), for the tests to inspect.
CALLS: list[tuple[torch.Tensor, object, object, dict]] = []


def scaled_normal(tensor: torch.Tensor, context, generator: torch.Generator, std: float = 1.0) -> None:
    """N(0, std²/fan_in), drawn from the run's generator."""
    tensor.normal_(0.0, std / context.fan_in**0.5, generator=generator)


def recording(tensor: torch.Tensor, context, generator: torch.Generator, **options) -> None:
    """Records its arguments, then fills the tensor with its layer's index."""
    CALLS.append((tensor, context, generator, options))
    tensor.fill_(float(context.layer))


def failing(tensor: torch.Tensor, context, generator: torch.Generator) -> None:
    raise ValueError("no weights today")


def first_row_only(tensor: torch.Tensor, context, generator: torch.Generator) -> None:
    """Forgets every entry but the first row's."""
    tensor[0].zero_()


def returning(tensor: torch.Tensor, context, generator: torch.Generator) -> torch.Tensor:
    """Returns a new tensor instead of filling the one it was given."""
    return torch.ones_like(tensor)


def exiting(tensor: torch.Tensor, context, generator: torch.Generator) -> None:
    raise SystemExit(3)


class HalfNormal(InitScheme):
    """A plugin class: |N(0, std²)|, with a declared variance."""

    std: float = 1.0

    def sample_(self, tensor: torch.Tensor, context, generator: torch.Generator | None) -> None:
        tensor.normal_(0.0, self.std, generator=generator).abs_()

    def weight_mean(self) -> float:
        return self.std * (2 / torch.pi) ** 0.5

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return self.std**2 * (1 - 2 / torch.pi)


class NotAScheme:
    """A class that is not an InitScheme."""


NOT_CALLABLE = 3
