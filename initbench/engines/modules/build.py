"""Building the module backend's runs: each run's model built and drawn, stacked; and their inputs.

Each run (scheme, seed) builds its model on the CPU and draws every parameter with its scheme,
from the run's own generator (:func:`~initbench.engines.modules.initialize.initialize`); the
models are then stacked (:class:`~initbench.engines.modules.stack.StackedModules`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from initbench.core.errors import InitbenchError
from initbench.core.runtime import derive_seed, resolve_dtype
from initbench.data.loading import load_dataset
from initbench.engines.base import Run
from initbench.engines.choice import STACKED, select
from initbench.engines.modules.initialize import initialize
from initbench.engines.modules.stack import StackedModules
from initbench.nets.architectures import build_builtin, build_factory

if TYPE_CHECKING:
    from initbench.config.run import Config


def build_model(config: Config, outputs: int | None, inputs: int | None) -> nn.Module:
    """One model of ``config``'s architecture, on the CPU, in ``config.dtype``, in train or eval mode.

    Args:
        outputs: a training head's outputs, or None for the signal-propagation experiments.
        inputs: input features (channels for the cnn); None: the experiment's own inputs
            (``width`` features, or ``input.channels`` channels).
    """
    model_config = config.model
    if model_config.arch == "module":
        assert model_config.factory is not None  # the config requires it for arch module
        model = build_factory(model_config.factory, model_config.kwargs)
    else:
        activation = model_config.build_activation()
        widths = model_config.hidden_widths()
        if inputs is None:
            inputs = config.input.channels if model_config.arch == "cnn" else model_config.width
        model = build_builtin(model_config.arch, activation, widths, inputs, model_config.bias, model_config.norm, outputs)
    model = model.to(resolve_dtype(config.dtype))
    return model.train(not model_config.eval)


def build_stack(config: Config, runs: list[Run], device: torch.device, outputs: int | None = None, inputs: int | None = None) -> StackedModules:
    """Every run's model, built and drawn (:func:`initialize`), stacked on ``device``.

    Each model is built with torch's global RNG seeded by its run's seed (and restored after), so a
    ``constructor`` run measures the model's own init reproducibly; every other scheme then redraws
    the parameters from the run's own generator, and ``init.rules`` pick the scheme per module.
    The models are built one at a time as the stack takes them, so only one exists beside the stack.
    """
    bias_scheme = config.resolved_init()[1]
    # A scheme that adds structure (Fixup's scalars) adds it to every model, so that all runs stack;
    # only its own runs' models get it active (InitScheme.prepare_model).
    structural = list({type(run.scheme): run.scheme for run in runs if run.scheme.needs_model}.values())

    def built(run: Run) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(run.seed)
            model = build_model(config, outputs, inputs)
        for scheme in structural:
            owner = type(run.scheme) is type(scheme)
            (run.scheme if owner else scheme).prepare_model(model, owner)
        initialize(model, run, bias_scheme, torch.Generator().manual_seed(run.seed), config.resolved_rules())
        run.scheme.finish_model(model)
        return model

    return StackedModules((built(run) for run in runs), runs, device)


def check_initialization(config: Config, outputs: int | None = None, inputs: int | None = None) -> StackedModules | None:
    """Build and draw, on the CPU, one model per scheme (the first seed), then drop them.

    What only a real model shows is refused here, before a run claims its directory: a scheme that
    cannot initialize this network (SkipInit or Fixup without a residual branch, a checkpoint of
    other shapes, dirac's groups), a rule that matches no module, a plugin that raises. The plain
    MLP of the fast engine is checked this way only for the schemes the config's own trial draw
    skips (a plugin, dirac): the others cannot fail on it. Returns the stack (None: not built).
    """
    schemes, bias = config.resolved_init()
    if select(config).backend == STACKED and all(scheme.trial_draw for scheme in [*(scheme for _, scheme in schemes), bias]):
        return None
    return build_stack(config, [Run(label, config.seed, scheme, bias) for label, scheme in schemes], torch.device("cpu"), outputs, inputs)


def model_failed(config: Config, x: torch.Tensor, error: Exception) -> InitbenchError:
    """The one-line error for a user's model that cannot take the inputs asked for."""
    return InitbenchError(
        f"Model '{config.model.factory}' failed on inputs of shape {list(x.shape[1:])}: {type(error).__name__}: {error}",
        hint="Check --input-shape (input.shape, batch first) and --tokens against what the model expects.",
    )


def module_inputs(config: Config, runs: list[Run], device: torch.device) -> torch.Tensor:
    """Each run's inputs ``[runs, batch, ...]`` from its seed's ``input`` stream.

    N(0, 1) of ``[batch, width]`` (mlp, resmlp), ``[batch, channels, size, size]`` (cnn) or
    ``input.shape`` (module); with ``input.tokens: V``, integers uniform in [0, V). With
    ``input.dataset``, every run gets the same real inputs: the dataset's first training examples,
    reshaped to that shape.
    """
    settings = config.input
    if config.model.arch == "module":
        assert settings.shape is not None  # the config requires it for arch module
        shape = tuple(settings.shape)
    elif config.model.arch == "cnn":
        shape = (settings.batch, settings.channels, settings.image_size, settings.image_size)
    else:
        shape = (settings.batch, config.model.width)
    if settings.dataset is not None:
        data = load_dataset(settings.dataset, config.train.data_seed if config.train is not None else 0).x_train
        needed = math.prod(shape)
        if len(data) < shape[0] or data[: shape[0]].size != needed:
            raise InitbenchError(
                f"input.dataset {settings.dataset}: its examples ({len(data)} × {data.shape[1]} features) don't fill inputs of shape {list(shape)}.",
                hint="Choose input.shape (or batch, width, channels and image_size) to match the dataset's features.",
            )
        real = torch.as_tensor(data[: shape[0]], dtype=resolve_dtype(config.dtype)).reshape(shape)
        return real.expand(len(runs), *shape).contiguous().to(device)
    values = []
    for run in runs:
        generator = torch.Generator().manual_seed(derive_seed(run.seed, "input"))
        if settings.tokens is not None:
            values.append(torch.randint(0, settings.tokens, shape, generator=generator))
        else:
            values.append(torch.empty(shape, dtype=resolve_dtype(config.dtype)).normal_(0.0, 1.0, generator=generator))
    return torch.stack(values).to(device)


def loss_directions(runs: list[Run], output: torch.Tensor) -> torch.Tensor:
    """The fixed r ~ N(0, 1) of each run's scalar loss, in the output's shape, from its seed's ``loss`` stream."""
    directions = torch.empty(output.shape, dtype=output.dtype)
    for index, run in enumerate(runs):
        directions[index].normal_(0.0, 1.0, generator=torch.Generator().manual_seed(derive_seed(run.seed, "loss")))
    return directions.to(output.device)
