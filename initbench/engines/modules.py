"""The module backend: real ``nn.Module``s, many runs at once, observed through forward hooks.

The fast engine (:mod:`initbench.engines.stacked`) knows one network, the plain MLP. Everything else (the
built-in ``resmlp``, ``cnn`` and normalized nets, and a user's own module) runs here:

1. Each run (scheme, seed) builds its model on the CPU and draws every parameter with its
   scheme, from the run's own generator, in registration order, each weight then its bias
   (:func:`initialize`). This is the fast engine's draw order, so a plain MLP is the same network
   on either backend.
2. The runs' parameters are stacked (``torch.func.stack_module_state``) and one copy of the model
   is called on each run's slice with ``torch.func.functional_call``: all runs together under
   ``torch.func.vmap`` where the model allows it, one at a time where it does not, with the reason
   recorded (BatchNorm in train mode updates its running statistics in place, and dropout draws
   random masks; vmap can batch neither the way a run alone computes them). Both give each run's
   own numbers (tested against running each model alone).
3. :class:`Observer` hooks every observed module (a context manager that always removes its
   hooks) and hands back each call's input and output, named by dotted module path, repeated
   calls numbered (``encoder.norm#2``).

Gradients use the same calls: each observed output gets a zero tensor added, and the gradient of
the loss with respect to that zero is dL/d(output) (``torch.func.grad``), which composes with
vmap where full backward hooks do not.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from initbench.core.errors import InitbenchError
from initbench.core.hooks import HookSet
from initbench.core.runtime import derive_seed, resolve_dtype
from initbench.data.loading import load_dataset
from initbench.engines.base import Run
from initbench.engines.training import per_run_loss
from initbench.nets.architectures import ActivationModule, Block, ResidualBlock, build_builtin, build_factory, is_norm, parameter_contexts
from initbench.schemes.base import InitScheme, own_state_dict
from initbench.schemes.rules import ResolvedRule, assign_rules, rule_context

if TYPE_CHECKING:
    from initbench.config.run import Config
    from initbench.nets.architectures import ParamContext


def initialize(model: nn.Module, run: Run, bias_scheme: InitScheme, generator: torch.Generator, rules: list[ResolvedRule] | None = None) -> None:
    """Draw every parameter of ``model`` for ``run``, in registration order, from ``generator``.

    Weights follow the run's scheme and biases ``bias_scheme``, each told its
    :class:`~initbench.nets.architectures.ParamContext`. Normalization layers get weight 1 and bias 0.
    Other parameters (scalars such as a residual gate) keep the value the constructor gave them.
    A scheme that keeps the constructor's init (``constructor``) draws nothing. A module one of
    ``rules`` matches gets the first such rule's schemes instead (see :mod:`initbench.schemes.rules`).
    """
    chosen = assign_rules(model, rules or [])
    if run.scheme.keeps_constructor_init and not chosen:
        return
    paths = {module: path for path, module in model.named_modules()}
    with torch.no_grad():
        for module, parameter, context in parameter_contexts(model):
            rule = chosen.get(paths[module])
            if rule is not None:
                draw_by_rule(model, paths[module], module, parameter, context, rule, generator)
            elif run.scheme.keeps_constructor_init:
                continue
            elif context is None:
                if is_norm(module):
                    parameter.fill_(1.0 if parameter is getattr(module, "weight", None) else 0.0)
            elif context.role == "weight":
                run.scheme.sample_(parameter, context, generator)
            else:
                bias_scheme.sample_(parameter, context, generator)


def draw_by_rule(
    model: nn.Module, path: str, module: nn.Module, parameter: nn.Parameter, context: ParamContext | None, rule: ResolvedRule, generator: torch.Generator
) -> None:
    """Draw one parameter of a module ``rule`` sets: weights by its scheme, biases by its bias.

    A parameter without a context is a norm's (or another weightless module's) ``weight`` or
    ``bias``, given fans of its own length; any other such parameter keeps its constructor value.
    """
    if context is None:
        role = "weight" if parameter is getattr(module, "weight", None) else "bias" if parameter is getattr(module, "bias", None) else None
        if role is None:
            return
        context = rule_context(model, path, module, parameter, role)
    scheme = rule.scheme if context.role == "weight" else rule.bias
    if scheme is not None and not scheme.keeps_constructor_init:
        scheme.sample_(parameter, context, generator)


@dataclass(frozen=True)
class ObservedModule:
    """A module whose output is one row of the statistics.

    Attributes:
        path: dotted module path.
        module: the module in the model that is called.
        pre_module: a submodule whose input is recorded as the row's pre-activation h (the
            built-in blocks' φ); None: the module's own input.
        weight: dotted name of the parameter reported as the row's weight, or None.
        gradient_at_pre: whether the row's gradient is dL/dh at the pre-activation (a built-in
            block, like the plain MLP's rows) rather than dL/d(output) (residual blocks, modules).
    """

    path: str
    module: nn.Module
    pre_module: nn.Module | None
    weight: str | None
    gradient_at_pre: bool = False


def observed_modules(model: nn.Module) -> list[ObservedModule]:
    """What to observe: a built-in net's blocks, or every leaf module of a user's model.

    Leaf modules are those without children, and those that own parameters directly
    (``nn.MultiheadAttention`` computes with its own weights and not through its ``out_proj``).
    """
    names = {module: name for name, module in model.named_modules()}
    blocks = [module for module in model.modules() if isinstance(module, (Block, ResidualBlock))]
    if blocks:
        observed = []
        for block in blocks:
            activations = [child for child in block.modules() if isinstance(child, ActivationModule)]
            weighted = next(child for child in block.modules() if isinstance(child, (nn.Linear, nn.Conv2d)))
            observed.append(ObservedModule(names[block], block, activations[-1], f"{names[weighted]}.weight", isinstance(block, Block)))
        return observed
    observed = []
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if next(module.children(), None) is None or own:
            weight = next((key for key, value in own.items() if value.dim() >= 2), None)
            observed.append(ObservedModule(name, module, None, None if weight is None else (f"{name}.{weight}" if name else weight)))
    return observed


def first_floating(value: Any) -> torch.Tensor | None:
    """The first floating-point tensor in a module's input or output (tuples: MultiheadAttention)."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_floating(item)
            if found is not None:
                return found
    return None


@dataclass
class Call:
    """One call of an observed module: its row label, the module, and the tensors it saw."""

    label: str
    observed: ObservedModule
    pre: torch.Tensor
    post: torch.Tensor
    has_pre: bool


class Observer(HookSet):
    """Forward hooks on the observed modules, recording every call in order.

    Use as a context manager: the hooks are removed on exit, also when the model raises. With
    ``perturbations`` set (one tensor per recorded call, in call order), each recorded output (or
    pre-activation, for rows whose gradient is taken there) is replaced by itself + perturbation,
    so that d(loss)/d(perturbation) is d(loss)/d(that tensor).
    """

    def __init__(self, observed: list[ObservedModule]) -> None:
        self.observed = observed
        self.calls: list[Call] = []
        self.perturbations: list[torch.Tensor] | None = None
        self._pre: dict[int, torch.Tensor] = {}
        super().__init__()

    def register(self) -> None:
        for index, item in enumerate(self.observed):
            self.keep(item.module.register_forward_hook(self._hook(index)))
            if item.pre_module is not None:
                self.keep(item.pre_module.register_forward_pre_hook(self._pre_hook(index)))

    def reset(self, perturbations: list[torch.Tensor] | None = None) -> None:
        self.calls, self._pre, self.perturbations = [], {}, perturbations

    def _pre_hook(self, index: int) -> Any:
        item = self.observed[index]

        def hook(module: nn.Module, inputs: Any) -> Any:
            found = first_floating(inputs)
            if found is None:
                return None
            if self.perturbations is not None and item.gradient_at_pre:
                # This row's call is appended when its module returns, so it is the next one.
                found = found + self.perturbations[len(self.calls)]
                self._pre[index] = found
                return (found, *inputs[1:])
            self._pre[index] = found
            return None

        return hook

    def _hook(self, index: int) -> Any:
        item = self.observed[index]

        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            post = first_floating(output)
            if post is None:
                return None
            pre = self._pre.pop(index, None) if item.pre_module is not None else first_floating(inputs)
            repeat = sum(call.observed is item for call in self.calls)
            label = item.path if repeat == 0 else f"{item.path}#{repeat + 1}"
            replaced = None
            if self.perturbations is not None and not item.gradient_at_pre:
                post = post + self.perturbations[len(self.calls)]
                replaced = post if isinstance(output, torch.Tensor) else (post, *output[1:])
            self.calls.append(Call(label, item, post if pre is None else pre, post, pre is not None))
            return replaced

        return hook


def vmap_obstacle(model: nn.Module) -> str | None:
    """Why ``model`` can't run its runs together under vmap with each run's own numbers, or None."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training and module.track_running_stats:
            return f"{name or 'the model'} ({type(module).__name__}) updates its running statistics in place in train mode"
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.training and module.p > 0:
            return f"{name or 'the model'} ({type(module).__name__}) draws random masks in train mode"
    return None


@dataclass
class StackedModules:
    """The runs' models stacked: one model called on each run's parameters.

    Args:
        models: one built, initialized model per run, on the CPU (kept: they name each run's tensors).
        runs: the runs, for their seeds (dropout draws from a stream of each run's seed).
        device: where to compute.
    """

    models: list[nn.Module]
    runs: list[Run]
    device: torch.device
    params: dict[str, torch.Tensor] = field(init=False)
    buffers: dict[str, torch.Tensor] = field(init=False)
    base: nn.Module = field(init=False)
    #: None when the runs go through vmap together, else why they go one at a time.
    one_at_a_time: str | None = field(init=False)

    def __post_init__(self) -> None:
        models = [model.to(self.device) for model in self.models]
        self.params, self.buffers = torch.func.stack_module_state(models)
        self.base = copy.deepcopy(models[0])
        self.one_at_a_time = vmap_obstacle(self.base)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Every run's output for its inputs ``x [runs, ...]``, ``[runs, ...]`` (differentiable in :attr:`params`)."""
        return run_each(self, self._single, x)

    def parameters(self) -> Iterator[torch.Tensor]:
        """The stacked parameters ``[runs, ...]``, leaves an optimizer can step."""
        return iter(self.params.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stacked parameters and buffers (BatchNorm's running statistics), for a checkpoint."""
        return {**{f"params.{k}": v.detach() for k, v in self.params.items()}, **{f"buffers.{k}": v for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from :meth:`state_dict`'s ``state``, in place (the optimizer holds these tensors)."""
        with torch.no_grad():
            for key, value in self.params.items():
                value.copy_(state[f"params.{key}"])
            for key, value in self.buffers.items():
                value.copy_(state[f"buffers.{key}"])

    def run_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Run ``index``'s current tensors, named as its own model's ``state_dict()`` names them (what
        the ``checkpoint`` scheme loads), without the structure other runs' schemes added inert."""
        model = self.models[index]
        stacked = {**self.params, **self.buffers}
        names = {id(tensor): name for name, tensor in (*model.named_parameters(), *model.named_buffers())}  # tied tensors: one name
        return {key: stacked[names[id(tensor)]][index].detach().cpu().clone() for key, tensor in own_state_dict(model, keep_vars=True).items()}

    def select(self, indices: list[int]) -> StackedModules:
        """The runs at ``indices`` as a stack of their own: copies of their parameters and buffers, the same called model."""
        chosen = copy.copy(self)
        chosen.models = [self.models[index] for index in indices]
        chosen.runs = [self.runs[index] for index in indices]
        with torch.no_grad():
            chosen.params = {key: value[indices] for key, value in self.params.items()}
            chosen.buffers = {key: value[indices] for key, value in self.buffers.items()}
        return chosen

    def losses(self, x: torch.Tensor, y: torch.Tensor, task: str) -> tuple[torch.Tensor, Callable[[], None]]:
        """Each run's loss on ``(x, y)``, ``[runs]``, and a function that sets the parameters' gradients (autograd)."""
        with torch.enable_grad():
            losses = per_run_loss(self(x), y, task)
            # Each run's loss depends on its own slice only, so d(Σ losses)/dθ_r = dL_r/dθ_r.
            total = losses.sum()

        def set_gradients() -> None:
            for parameter, gradient in zip(self.params.values(), torch.autograd.grad(total, list(self.params.values())), strict=True):
                parameter.grad = gradient

        return losses.detach(), set_gradients

    def _single(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        output = torch.func.functional_call(self.base, (params, buffers), (x,))
        found = first_floating(output)
        if found is None:
            raise TypeError(f"the model returned {type(output).__name__}, not a floating-point tensor")
        return found


@contextmanager
def observing(stack: StackedModules) -> Iterator[Observer]:
    """An :class:`Observer` on ``stack``'s called model, removed on exit whatever happens."""
    with Observer(observed_modules(stack.base)) as observer:
        yield observer


@dataclass
class ObservedPass:
    """One pass of every run through the model: each recorded call, with ``[runs, ...]`` tensors."""

    labels: list[str]
    modules: list[ObservedModule]
    pres: list[torch.Tensor]
    posts: list[torch.Tensor]
    has_pre: list[bool]
    output: torch.Tensor
    grads: list[torch.Tensor] | None = None  # per call: dL/dh for built-in blocks, dL/d(output) otherwise
    weight_grads: dict[str, torch.Tensor] | None = None  # dL/dθ per parameter name


def observe(stack: StackedModules, x: torch.Tensor, loss_direction: torch.Tensor | None = None) -> ObservedPass:
    """Run ``x [runs, ...]`` through every run's model, recording each observed call.

    With ``loss_direction`` r (the output's shape), also backpropagate L = Σ output ⊙ r / √batch
    and record dL/d(output) of every call and dL/dθ of every parameter.
    """
    with observing(stack) as observer:
        recorded: dict[str, Any] = {}

        def traced(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], inputs: torch.Tensor) -> tuple[Any, ...]:
            observer.reset(recorded.get("perturbations"))
            output = stack._single(params, buffers, inputs)
            recorded["calls"] = observer.calls
            return output, [call.pre for call in observer.calls], [call.post for call in observer.calls]

        output, pres, posts = run_each(stack, traced, x)
        calls: list[Call] = recorded["calls"]
        result = ObservedPass([c.label for c in calls], [c.observed for c in calls], pres, posts, [c.has_pre for c in calls], output)
        if loss_direction is None:
            return result
        batch = x.shape[1]

        def loss(params: dict[str, torch.Tensor], perturbations: list[torch.Tensor], buffers: dict[str, torch.Tensor], inputs: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            observer.reset(perturbations)
            return (stack._single(params, buffers, inputs) * r).sum() / math.sqrt(batch)

        gradient = torch.func.grad(loss, argnums=(0, 1))
        zeros = [torch.zeros_like(pre if module.gradient_at_pre else post) for module, pre, post in zip(result.modules, pres, posts, strict=True)]
        weight_grads, grads = run_each(stack, lambda p, b, i: gradient(p, i[0], b, i[1], i[2]), (zeros, x, loss_direction))
        result.grads, result.weight_grads = grads, weight_grads
        return result


def run_each(stack: StackedModules, function: Any, inputs: Any) -> Any:
    """``function(params, buffers, inputs)`` for every run: under vmap, or one run at a time.

    Returns the function's outputs stacked on a leading run axis either way.
    """
    if stack.one_at_a_time is None:
        try:
            return torch.func.vmap(function, randomness="error")(stack.params, stack.buffers, inputs)
        except Exception as error:  # an op vmap cannot batch: fall back, and say why
            stack.one_at_a_time = f"vmap failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    results = []
    for index, run in enumerate(stack.runs):
        # Random modules (dropout) draw from a stream of the run's own seed, whatever runs beside it.
        with torch.random.fork_rng(devices=[stack.device] if stack.device.type == "cuda" else []):
            torch.manual_seed(derive_seed(run.seed, "module-randomness"))
            params, buffers, run_inputs = pytree.tree_map(lambda tensor, i=index: tensor[i], (stack.params, stack.buffers, inputs))
            results.append(function(params, buffers, run_inputs))
    return pytree.tree_map(lambda *items: torch.stack(items), *results)


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
    """
    bias_scheme = config.resolved_init()[1]
    # A scheme that adds structure (Fixup's scalars) adds it to every model, so that all runs stack;
    # only its own runs' models get it active (InitScheme.prepare_model).
    structural = list({type(run.scheme): run.scheme for run in runs if run.scheme.needs_model}.values())
    models = []
    for run in runs:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(run.seed)
            model = build_model(config, outputs, inputs)
        for scheme in structural:
            owner = type(run.scheme) is type(scheme)
            (run.scheme if owner else scheme).prepare_model(model, owner)
        initialize(model, run, bias_scheme, torch.Generator().manual_seed(run.seed), config.resolved_rules())
        run.scheme.finish_model(model)
        models.append(model)
    return StackedModules(models, runs, device)



def check_initialization(config: Config, outputs: int | None = None, inputs: int | None = None) -> StackedModules | None:
    """Build and draw, on the CPU, one model per scheme (the first seed), then drop them.

    What only a real model shows is refused here, before a run claims its directory: a scheme that
    cannot initialize this network (SkipInit or Fixup without a residual branch, a checkpoint of
    other shapes, dirac's groups), a rule that matches no module, a plugin that raises. The plain
    MLP of the fast engine is checked this way only for the schemes the config's own trial draw
    skips (a plugin, dirac): the others cannot fail on it. Returns the stack (None: not built).
    """
    schemes, bias = config.resolved_init()
    if config.uses_fast_engine() and all(scheme.trial_draw for scheme in [*(scheme for _, scheme in schemes), bias]):
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
