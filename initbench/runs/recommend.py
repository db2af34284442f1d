"""``initbench recommend``: per-layer init scales that hold every layer at unit variance, written as
``init.rules``, then checked by a forward pass and a short training run against PyTorch's defaults
and He.

    initbench recommend --arch cnn --depth 20 --activation tanh
    initbench recommend --arch resmlp --depth 10 --norm layernorm --steps 100
    initbench recommend --factory tests.probe_models:small_mlp --input-shape 64,5
    initbench recommend --config configs/rules_cnn_forward.yaml

1. **Scales.** Weight layer l gets ``variance_scaling:scale=s_l,mode=fan_in,distribution=normal``,
   i.e. Var(W) = s_l / fan_in, so s_l is the layer's σ_w².

   - *Theory*, for the mlp and cnn without normalization (biases zero): the first layer sees the
     inputs, E[x²] = 1, so s₁ = 1 gives Var(h¹) = 1; every later layer sees φ(h) with h ~ N(0, 1),
     and s = 1 / E[φ(z)²] (:func:`initbench.theory.gains.variance_preserving_gain` squared) maps unit
     variance to itself. χ₁ = s·E[φ'(z)²] at q = 1 is reported beside it: 1 for relu (He init), above
     1 for tanh, whose unit-variance point is slightly chaotic (no σ_w² gives both with zero biases).
   - *Data*, everywhere else (residual nets, normalized nets, a user's module): the rescaling pass
     of LSUV (Mishkin & Matas 2016), :func:`data_driven_scales`. Start from s = 1 (LeCun normal),
     then for each weight layer in forward order, measure the variance of its output on one batch
     and divide its weight by the std, until |Var − 1| < tol; s_l is the product of the factors,
     squared.

   A training net's layers that the measured net lacks (the classifier head, a resmlp's stem) are
   calibrated by the data pass on a batch of the training data.
2. **Forward check.** The forward experiment runs the rules (``config.yaml`` of the run directory,
   so ``initbench run DIR/config.yaml`` reproduces the reported stds exactly), and PyTorch's
   defaults (``constructor``) and He (``kaiming_normal``) on the same net.
3. **Training check.** The train experiment trains the rules (``train.yaml``), and defaults and He
   stacked, for ``--steps`` steps: final loss, test accuracy and steps to the target accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from initbench import theory
from initbench.config.loading import apply_overrides, read_yaml, validate_config
from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import Progress, Table
from initbench.core.registry import unknown_name_error
from initbench.data.loading import load_dataset
from initbench.engines.base import Run
from initbench.engines.lsuv_fit import fit_stack, rescaled_weight
from initbench.engines.modules import StackedModules, build_model, initialize, module_inputs, observed_modules
from initbench.experiments.base import ExperimentResult
from initbench.experiments.propagation import ForwardExperiment
from initbench.experiments.train import TrainExperiment, image_shape
from initbench.nets.architectures import fans, weight_layers
from initbench.runs.rundir import RESULTS_ROOT, RunDirectory
from initbench.runs.runner import begin, run_and_save, run_detached
from initbench.schemes.lsuv import LSUV

if TYPE_CHECKING:
    from initbench.runs.runner import Renderer

#: The scheme every rule uses, with its σ_w² in place of {scale}.
RULE_SCHEME = "variance_scaling:scale={scale},mode=fan_in,distribution=normal"
#: The training check's config, beside the forward run's config.yaml.
TRAIN_CONFIG = "train.yaml"
#: Baselines: PyTorch's defaults and He.
BASELINES = ("constructor", "he")
ARCHS = ("mlp", "resmlp", "cnn")
#: Significant digits of a written scale: what the rules say is what the report measured.
SCALE_DIGITS = 4


def rule_scheme(scale: float) -> str:
    return RULE_SCHEME.format(scale=f"{scale:.{SCALE_DIGITS}g}")


def base_config(arch: str | None, factory: str | None, config: Path | None, overrides: list[str], seeds: int, device: str | None) -> dict[str, Any]:
    """The raw forward config of the net to recommend for: a built-in ``arch``, a ``factory``, or a
    config file (its model and input sections), with ``overrides`` applied."""
    if sum(source is not None for source in (arch, factory, config)) != 1:
        raise InitbenchError("recommend: give exactly one of --arch, --factory or --config.", hint="For example: initbench recommend --arch cnn --depth 20 --activation tanh")
    if arch is not None and arch not in ARCHS:
        raise unknown_name_error("arch", arch, list(ARCHS))
    raw: dict[str, Any]
    if config is not None:
        loaded = read_yaml(config)
        raw = {key: loaded[key] for key in ("model", "input", "dtype") if key in loaded}
        raw["name"] = f"recommend-{loaded.get('name', 'config')}"
    elif factory is not None:
        raw = {"name": "recommend-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in factory.rpartition(":")[2])[:60], "model": {"arch": "module", "factory": factory}}
    else:
        # Small defaults: 10 layers of 32 units, batch 256; the cnn sees 1×8×8 images, as it trains on digits.
        images = {"channels": 1, "image_size": 8} if arch == "cnn" else {}
        raw = {"name": f"recommend-{arch}", "model": {"arch": arch, "depth": 10, "width": 32}, "input": {"batch": 256, **images}}
    raw.update(experiment="forward", seeds=seeds, init={"scheme": "constructor"}, **({"device": device} if device else {}))
    return apply_overrides(raw, overrides)


def theory_scales(config: Config, paths: list[str]) -> tuple[dict[str, float], dict[str, float]] | str:
    """``(σ_w² per layer, χ₁ per layer)`` from mean-field theory, or why it does not apply."""
    model = config.model
    if model.arch not in ("mlp", "cnn"):
        return f"{model.arch}: the mean-field map here covers the plain mlp and cnn"
    if model.norm != "none":
        return f"{model.norm}: normalization sets each layer's scale from the batch"
    activation = model.build_activation()
    gain = theory.variance_preserving_gain(activation)
    if gain is None:
        return f"{model.activation} has no variance-preserving gain"
    # Inputs are N(0, 1): the first layer needs σ_w² = 1 for Var(h¹) = 1.
    scales = {path: 1.0 if layer == 0 else gain**2 for layer, path in enumerate(paths)}
    return scales, {path: theory.chi1(activation, scale, 1.0) for path, scale in scales.items()}


def data_driven_scales(model: nn.Module, x: torch.Tensor, paths: list[str], tol: float = 0.01, max_iter: int = 10) -> dict[str, float]:
    """LSUV's rescaling pass (:func:`initbench.engines.lsuv_fit.fit_stack`) on the layers at ``paths``, returning
    each layer's σ_w² relative to its weights on entry.

    For each of those modules in order: measure Var(output) on ``x`` (its first call), divide its
    weight by √Var, and repeat until |Var − 1| < ``tol`` or ``max_iter`` rounds; the other weight
    layers are left as they are. The weights are rescaled in place; the returned factor per layer
    is Var(W) after over Var(W) before, the product of the factors 1/Var.
    """

    layers = dict(weight_layers(model))
    keys = {path: rescaled_weight(path, layers[path]) for path in paths}
    stack = StackedModules([model], [Run("recommend", 0, LSUV(tol=tol, max_iter=max_iter), None)], x.device)
    before = {path: stack.params[key][0].detach().double().clone() for path, key in keys.items()}
    fits = {fit.module: fit for fit in fit_stack(stack, x[None], tol, max_iter, frozenset(layers) - set(paths))[0]}
    factors = {}
    with torch.no_grad():
        for path, key in keys.items():
            if not fits[path].converged:
                raise InitbenchError(f"recommend: {path}'s output has variance {fits[path].variance:.3g} on the batch after {fits[path].iterations} rescales; no scale found that makes it 1.")
            after = stack.params[key][0]
            factors[path] = float((after.double().square().sum() / before[path].square().sum()).item())
            model.get_parameter(key).copy_(after)
    return factors


def drawn_model(config: Config, outputs: int | None, inputs: int | None) -> nn.Module:
    """``config``'s model for its first seed, drawn by its first scheme and its rules, as a run draws it."""
    schemes, bias = config.resolved_init()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config, outputs, inputs)
    initialize(model, Run(schemes[0][0], config.seed, schemes[0][1], bias), bias, torch.Generator().manual_seed(config.seed), config.resolved_rules())
    return model


def lecun(raw: dict[str, Any], scales: dict[str, float] | None = None) -> Config:
    """``raw`` with every weight LeCun normal (s = 1), the data pass's start, but the layers of
    ``scales`` as recommended; biases zero."""
    init = {"scheme": rule_scheme(1.0), "bias": "zeros"}
    return validate_config({**raw, "init": {**init, **({"rules": rules_of(scales)} if scales else {})}}, "recommend")


def rules_of(scales: dict[str, float]) -> list[dict[str, str]]:
    """One rule per weight layer, matched by its path, in model order."""
    return [{"match": path, "scheme": rule_scheme(scale)} for path, scale in scales.items()]


def with_rules(raw: dict[str, Any], scales: dict[str, float]) -> dict[str, Any]:
    """``raw`` with one rule per weight layer, by path, in model order; everything else as built."""
    return {**raw, "init": {"scheme": "constructor", "bias": "zeros", "rules": rules_of(scales)}}


@dataclass
class Recommendation:
    """What ``recommend`` found and measured: per layer, and the training check."""

    source: str  # "theory" or "data"
    reason: str | None  # why theory did not apply
    forward: Config
    train: Config | None
    scales: dict[str, float]
    chi1: dict[str, float] | None
    layers: list[dict[str, Any]]
    training: dict[str, dict[str, Any]]


def output_column(config: Config) -> str:
    """The ``layer_stats.csv`` column of a weight layer's output: ``pre_std`` (h, the input of φ)
    for a built-in block, ``std`` (the module's own output) in a user's module."""
    return "std" if config.model.arch == "module" else "pre_std"


def median_by_module(result: ExperimentResult, config: Config) -> dict[str, dict[str, dict[str, float]]]:
    """scheme → row (``layer_stats.csv``'s module) → the median over seeds of σ_w² = fan_in·weight_std²
    and of the std of the weight layer's output (:func:`output_column`)."""
    table = result.tables["layer_stats.csv"]
    column = {name: index for index, name in enumerate(table.columns)}
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in table.rows:
        if row[column["fan_in"]] == "":
            continue
        entry = values.setdefault(row[column["scheme"]], {}).setdefault(row[column["module"]], {"sigma_w2": [], "std": []})
        entry["sigma_w2"].append(row[column["fan_in"]] * float(row[column["weight_std"]]) ** 2)
        entry["std"].append(float(row[column[output_column(config)]]))
    return {
        scheme: {module: {key: float(np.median(items)) for key, items in entry.items()} for module, entry in modules.items()}
        for scheme, modules in values.items()
    }


def training_inputs(config: Config) -> tuple[torch.Tensor, int, int | None]:
    """A batch of the training set shaped for ``config``'s model, its outputs, and its input
    features (channels for the cnn; None for a module)."""

    assert config.train is not None
    dataset = load_dataset(config.train.dataset, config.train.data_seed)
    shape = image_shape(config, dataset)
    x = torch.as_tensor(dataset.x_train[:256], dtype=getattr(torch, config.dtype))
    if shape is not None:
        x = x.reshape(-1, *shape)
    inputs = None if config.model.arch == "module" else (shape[0] if shape is not None else dataset.input_dim)
    return x, dataset.output_dim, inputs


def recommend_for(raw: dict[str, Any], train: dict[str, Any] | None, progress: Progress, data_driven: bool = False) -> Recommendation:
    """Find the scales for the forward config ``raw``, and check them: forward, and trained with
    the ``train`` section (None: no training check). ``data_driven``: the data pass even where
    theory applies (it sees what theory leaves out, such as the cnn's zero padding)."""

    config = validate_config(raw, "recommend")
    probe = drawn_model(lecun(raw), None, None)
    layers = dict(weight_layers(probe))
    if not layers:
        raise InitbenchError("recommend: the model has no weight layer (no parameter of two or more dimensions).")
    found = "the data-driven pass was asked for" if data_driven else theory_scales(config, list(layers))
    if isinstance(found, str):
        x = module_inputs(config, [Run("probe", config.seed, config.resolved_init()[0][0][1], None)], torch.device("cpu"))[0]
        source, reason, chi1 = "data", found, None
        scales = data_driven_scales(probe, x, list(layers))
    else:
        source, reason, (scales, chi1) = "theory", None, found
    forward = validate_config(with_rules(raw, scales), "recommend")
    ruled = median_by_module(run_detached(ForwardExperiment(), forward, progress), config)
    measured = {"rules": next(iter(ruled.values())), **median_by_module(run_detached(ForwardExperiment(), baselines(raw), progress), config)}
    # The forward experiment's row that reports each weight layer: its block in a built-in net
    # (the resmlp's block reports its first layer only), the layer itself in a user's module.
    row_of = {item.weight.rpartition(".")[0]: item.path for item in observed_modules(probe) if item.weight is not None}
    rows = []
    for path, module in layers.items():
        weight = next(parameter for parameter in module.parameters(recurse=False) if parameter.dim() >= 2)
        row = {"module": path, "row": row_of.get(path), "fan_in": fans(tuple(weight.shape))[0], "sigma_w2": scales[path], "source": source, "chi1": None if chi1 is None else chi1[path]}
        for scheme, by_row in measured.items():
            values = by_row.get(row_of.get(path, ""), {})
            row |= {f"{key}_{scheme}": values.get(key) for key in ("sigma_w2", "std")}
        rows.append(row)
    if train is None:
        return Recommendation(source, reason, forward, None, scales, chi1, rows, {})
    train_raw = {**raw, "experiment": "train", "train": train}
    start = lecun(train_raw, scales)
    x, outputs, inputs = training_inputs(start)
    net = drawn_model(start, outputs, inputs)
    # The layers the measured net lacks (the head, a stem): calibrated on the training data, the others as recommended.
    missing = [path for path, _ in weight_layers(net) if path not in scales]
    train_config = validate_config(with_rules(train_raw, {**scales, **data_driven_scales(net, x, missing)}), "recommend")
    training = {"rules": only_entry(run_detached(TrainExperiment(), train_config, progress))}
    training.update(run_detached(TrainExperiment(), baselines(train_raw), progress).summary["schemes"])  # type: ignore[index]
    return Recommendation(source, reason, forward, train_config, scales, chi1, rows, training)


def baselines(raw: dict[str, Any]) -> Config:
    """``raw`` with PyTorch's defaults and He, stacked."""
    return validate_config({**raw, "init": {"schemes": list(BASELINES)}}, "recommend")


def only_entry(result: ExperimentResult) -> dict[str, Any]:
    """The one scheme's entry of a run's summary."""
    assert result.summary is not None
    (entry,) = result.summary["schemes"].values()
    return entry


def training_section(dataset: str, steps: int, lr: float) -> dict[str, Any]:
    """The short training check: minibatch SGD with momentum, ten evaluations, target accuracy 0.9."""
    return {"dataset": dataset, "steps": steps, "lr": lr, "optimizer": "sgd", "momentum": 0.9, "batch_size": 64, "eval_every": max(1, steps // 10), "target_accuracy": 0.9}


#: What summary.json keeps of each training check's entry (``steps_to_target_per_seed``: for the report's "k of n reached").
TRAINING_KEYS = ("loss", "test_acc", "steps_to_target", "steps_to_target_reached", "steps_to_target_per_seed", "diverged")


def result_of(found: Recommendation) -> ExperimentResult:
    """The data of a recommendation: layers.csv and summary.json (the reporter writes summary.md and the terminal tables from them)."""
    training = {label: {key: entry[key] for key in TRAINING_KEYS if key in entry} for label, entry in found.training.items()} if found.train is not None else {}
    summary = {
        "experiment": "recommend",
        "source": found.source,
        "why_data_driven": found.reason,
        "rule_scheme": RULE_SCHEME,
        "layers": found.layers,
        "rules": found.forward.model_dump(mode="json", exclude_none=True)["init"]["rules"],
        "training": training,
    }
    table = Table(columns=tuple(found.layers[0]), rows=[tuple(row.values()) for row in found.layers])
    return ExperimentResult(tables={"layers.csv": table}, summary=summary)


def save(found: Recommendation, result: ExperimentResult, out: Path | None, device: str, render: Renderer, root: Path = RESULTS_ROOT) -> tuple[RunDirectory, list[Any]]:
    """Write the run directory: ``config.yaml`` (the forward run of the rules), ``train.yaml`` (the
    training run of the rules), ``layers.csv`` and ``summary.json``, then ``render`` its summary.md;
    returns it and what the terminal shows."""
    directory = begin(found.forward, out, device, root)

    def write(result: ExperimentResult) -> None:
        directory.save(result)
        if found.train is not None:
            directory.write_text(TRAIN_CONFIG, found.train.to_yaml())

    return directory, run_and_save(directory, lambda: result, write, render)

