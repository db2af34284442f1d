"""Which engine runs a config: :func:`select` names the backend and says why.

The stacked engine (:mod:`~initbench.engines.stacked`, :mod:`~initbench.engines.training`) draws
the plain MLP layer by layer and never builds a module: depth 1000 in a few hundred MiB, and a
trainer 3.7× faster than vmap(grad) on small nets. Everything it cannot draw that way goes through
the module backend (:mod:`~initbench.engines.modules`): real ``nn.Module``s, stacked over runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from initbench.config.run import Config

Backend = Literal["stacked", "module"]
STACKED: Backend = "stacked"
MODULE: Backend = "module"


@dataclass(frozen=True)
class EngineChoice:
    """The backend that runs a config, and a short sentence saying why (summary.json's ``engine``)."""

    backend: Backend
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"backend": self.backend, "reason": self.reason}


def select(config: Config) -> EngineChoice:
    """The stacked engine for the plain MLP drawn by its schemes, the module backend for the rest.

    The rest: every other network, normalization, ``init.rules`` (they match module types and
    paths), real inputs to a propagation run, a scheme that keeps the constructor's init, acts on
    the whole model or is fitted to a batch, and training that saves its models in the model's own
    key layout. The first of these that applies is the reason given.
    """
    model = config.model
    if model.arch != "mlp":
        network = {"resmlp": "a residual mlp", "cnn": "a cnn", "module": "a user's module"}.get(model.arch, model.arch)
        return EngineChoice(MODULE, f"{network}, not the plain mlp: the module backend")
    if model.norm != "none":
        return EngineChoice(MODULE, f"an mlp with {model.norm}: the module backend")
    if config.init.rules is not None:
        return EngineChoice(MODULE, "init.rules match module types and paths: the module backend")
    if config.input.dataset is not None and config.experiment != "train":
        return EngineChoice(MODULE, "input.dataset feeds real inputs to the model: the module backend")
    for label, scheme in config.init.build_schemes():
        if scheme.keeps_constructor_init:
            return EngineChoice(MODULE, f"'{label}' keeps the constructor's init: the module backend")
        if scheme.needs_model:
            return EngineChoice(MODULE, f"'{label}' acts on the whole model: the module backend")
        if scheme.needs_data:
            return EngineChoice(MODULE, f"{label} needs data: the module backend")
    if config.train is not None and config.train.save_models:
        return EngineChoice(MODULE, "save_models names each run's tensors: the module backend")
    return EngineChoice(STACKED, "an mlp whose schemes all draw per layer: the stacked engine")
