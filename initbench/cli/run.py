"""The commands that run a net: ``run`` (a config), ``compare`` (schemes on one net), ``probe`` (your
own model) and ``recommend`` (per-layer scales for a net).

Each command's signature is its ``--help``; its body turns the options into a config (through
:mod:`initbench.config.loading`, as the API does) and runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from initbench.cli.app import (
    DeviceOption,
    EvalOption,
    OutOption,
    QuietOption,
    SeedsOption,
    ThreadsOption,
    execute_and_report,
    finite,
    progress_shown,
    reported_errors,
    run_config,
    say,
)
from initbench.core.errors import InitbenchError
from initbench.core.threads import use_threads
from initbench.outputs.console import stderr, stdout


def run(
    config: Annotated[Path | None, typer.Argument(help="A YAML config, e.g. configs/relu_kaiming.yaml or a run's config.yaml.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE overrides, e.g. model.depth=50 init.gain=auto.", show_default=False)] = None,
    out: OutOption = None,
    device: DeviceOption = None,
    seeds: SeedsOption = None,
    eval_mode: EvalOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Run an interrupted or failed run again in its directory, from where it stopped.")
    ] = None,
) -> None:
    """Run the experiment a config describes.

    [bold]Examples[/bold]

      initbench run configs/relu_kaiming.yaml

      initbench run configs/relu_kaiming.yaml model.depth=50 init.scheme=xavier_normal --seeds 3

      initbench run --resume results/circles_dlai-20250101-120000
    """
    with reported_errors():
        if resume is not None:
            if config is not None or overrides or out is not None or device is not None or seeds is not None or eval_mode is not None:
                raise InitbenchError(
                    "--resume takes only the run directory: the run continues with the config it recorded.",
                    hint=f"Run `initbench run --resume {resume}` alone, or start a new run with the changes.",
                )
            use_threads(threads)
            execute_and_report(None, None, quiet, resume)
            return
        if config is None:
            raise InitbenchError("Give a config to run, or --resume DIR.", hint="For example: initbench run configs/relu_kaiming.yaml")
        # Deferred for start-up time: loads pydantic and torch.
        from initbench.config.loading import build_config, read_yaml
        from initbench.runs.sweeps import check_no_sweep_section

        raw = read_yaml(config)  # the only read: a pipe or /dev/stdin can be read once
        check_no_sweep_section(raw, config)
        options = {"device": ("--device", device), "seeds": ("--seeds", seeds), "model.eval": ("--eval/--no-eval", eval_mode)}
        run_config(build_config(raw, str(config), overrides or [], options), out, threads, quiet)


def is_override(argument: str) -> bool:
    """``model.depth=50`` is an override; ``normal:std=0.01`` (a ``:`` before the ``=``) a scheme."""
    key, sep, _ = argument.partition("=")
    return bool(sep) and ":" not in key


def compare(
    schemes: Annotated[
        list[str],
        typer.Argument(help="Schemes as NAME or NAME:key=value,key=value (each string labels its run), and KEY=VALUE config overrides such as model.depth=50.", show_default=False),
    ],
    config: Annotated[Path | None, typer.Option("--config", help="Base config (default: 100 layers × 256 relu units, batch 1024).")] = None,
    activation: Annotated[str | None, typer.Option("--activation", help="Activation, e.g. tanh or leaky_relu:negative_slope=0.2.")] = None,
    depth: Annotated[int | None, typer.Option("--depth", help="Number of layers.")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Units per layer.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Input rows.")] = None,
    seeds: SeedsOption = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="forward, gradients, all or train (see `initbench list experiments`).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="train: the dataset, e.g. moons or digits.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="train: optimizer steps.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="train: learning rate.", callback=finite)] = None,
    out: OutOption = None,
    device: DeviceOption = None,
    eval_mode: EvalOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run one experiment per scheme on the same network, with the results overlaid.

    [bold]Examples[/bold]

      initbench compare zeros random xavier he

      initbench compare normal:std=0.01 xavier_uniform:gain=auto he --activation tanh --depth 100 --width 256

      initbench compare zeros normal:std=10 he --config configs/circles_dlai.yaml --seeds 3

      initbench compare zeros he --experiment train --dataset moons --steps 2000 train.optimizer=adam
    """
    with reported_errors():
        # Deferred for start-up time: loads pydantic and torch.
        from initbench.config.loading import compare_config, read_yaml

        overrides = [argument for argument in schemes if is_override(argument)]
        schemes = [argument for argument in schemes if not is_override(argument)]
        if not schemes:
            raise InitbenchError("Give at least one scheme to compare.", hint="For example: initbench compare xavier he")
        raw = None  # None: compare's default net
        if config is not None:
            # Deferred for start-up time: loads pydantic and torch.
            from initbench.runs.sweeps import check_no_sweep_section

            raw = read_yaml(config)
            check_no_sweep_section(raw, config)
        validated = compare_config(raw, str(config) if config is not None else None, schemes, {
            "model.activation": ("--activation", activation), "model.depth": ("--depth", depth), "model.width": ("--width", width),
            "input.batch": ("--batch", batch), "seeds": ("--seeds", seeds), "device": ("--device", device), "experiment": ("--experiment", experiment),
            "train.dataset": ("--dataset", dataset), "train.steps": ("--steps", steps), "train.lr": ("--lr", lr), "model.eval": ("--eval/--no-eval", eval_mode),
        }, overrides)  # fmt: skip
        run_config(validated, out, threads, quiet)


def probe(
    factory: Annotated[str, typer.Argument(help="The model's factory as package.module:callable, e.g. torch.nn:TransformerEncoderLayer.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="KEY=VALUE overrides, e.g. model.kwargs.d_model=64 model.kwargs.nhead=4.", show_default=False)
    ] = None,
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="The input's shape, batch first, e.g. 8,16,64.")] = None,
    tokens: Annotated[int | None, typer.Option("--tokens", help="Feed integer tokens in [0, V) instead of N(0, 1) floats (embedding models).", min=1)] = None,
    scheme: Annotated[
        list[str] | None, typer.Option("--scheme", help="Redraw every weight with this scheme (repeat for several); default: the model's own init.")
    ] = None,
    experiment: Annotated[str, typer.Option("--experiment", help="forward or gradients.")] = "forward",
    seeds: SeedsOption = None,
    device: DeviceOption = None,
    eval_mode: EvalOption = None,
    out: OutOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Probe your own model: per-module output statistics at init, for its own init or initbench's schemes.

    Forward hooks on every leaf module record each call's output in execution order; with
    --experiment gradients, a fixed random loss is backpropagated too.

    [bold]Examples[/bold]

      initbench probe torch.nn:TransformerEncoderLayer model.kwargs.d_model=64 model.kwargs.nhead=4 model.kwargs.batch_first=true --input-shape 8,16,64

      initbench probe mypkg.models:build --input-shape 32,3,32,32 --scheme he --scheme default --seeds 3

      initbench probe torch.nn:Embedding model.kwargs.num_embeddings=100 model.kwargs.embedding_dim=32 --input-shape 8,16 --tokens 100
    """
    with reported_errors():
        # Deferred for start-up time: loads pydantic and torch.
        from initbench.config.loading import probe_config

        if experiment not in ("forward", "gradients"):
            raise InitbenchError(f"--experiment {experiment}: probe runs forward or gradients.")
        shape = None if input_shape is None else parse_shape(input_shape)
        options = {
            "input.tokens": ("--tokens", tokens), "seeds": ("--seeds", seeds), "device": ("--device", device), "model.eval": ("--eval/--no-eval", eval_mode),
        }  # fmt: skip
        run_config(probe_config(factory, experiment, scheme or [], shape, options, overrides or []), out, threads, quiet)


def recommend(
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE overrides, e.g. model.bias=true or model.kwargs.d_model=64.", show_default=False)] = None,
    arch: Annotated[str | None, typer.Option("--arch", help="A built-in net: mlp, resmlp or cnn.")] = None,
    factory: Annotated[str | None, typer.Option("--factory", help="Your model's factory, package.module:callable (with --input-shape).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A config whose model and input sections describe the net.")] = None,
    depth: Annotated[int | None, typer.Option("--depth", help="Layers (or residual blocks) of a built-in net.")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Units (channels for the cnn) of a built-in net.")] = None,
    activation: Annotated[str | None, typer.Option("--activation", help="The activation, e.g. tanh.")] = None,
    norm: Annotated[str | None, typer.Option("--norm", help="none, batchnorm or layernorm.")] = None,
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="A factory's input shape, batch first, e.g. 64,5.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="The training check's dataset (default digits; a factory trains only with one).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Training check steps (0: no training check).", min=0)] = 200,
    lr: Annotated[float, typer.Option("--lr", help="Training check learning rate (sgd, momentum 0.9).", callback=finite)] = 0.05,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds of every check.", min=1)] = 3,
    data_driven: Annotated[bool, typer.Option("--data-driven", help="Use the data pass even where theory applies (it sees the cnn's zero padding).")] = False,
    out: OutOption = None,
    device: DeviceOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Per-layer init scales that hold every layer at unit variance, as init.rules, checked against PyTorch's defaults and He.

    [bold]Examples[/bold]

      initbench recommend --arch cnn --depth 20 --activation tanh

      initbench recommend --arch resmlp --depth 10 --norm layernorm --steps 100

      initbench recommend --factory tests.probe_models:small_mlp --input-shape 64,5
    """
    with reported_errors():
        # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
        from initbench.config.loading import option_overrides, validate_config
        from initbench.outputs.run_report import render_into
        from initbench.runs.recommend import base_config, recommend_for, result_of, save, training_section

        flags, names = option_overrides({
            "model.depth": ("--depth", depth), "model.width": ("--width", width), "model.activation": ("--activation", activation),
            "model.norm": ("--norm", norm), "input.shape": ("--input-shape", None if input_shape is None else parse_shape(input_shape)),
        })  # fmt: skip
        raw = base_config(arch, factory, config, [*flags, *(overrides or [])], seeds, device)
        validate_config(raw, None, {**names, "seeds": "--seeds", "device": "--device"})  # refused in the flags' own names, before any work
        use_threads(threads)
        if lr <= 0:
            raise InitbenchError(f"--lr: the training check's learning rate must be above 0 (got {lr}).")
        chosen = dataset if dataset is not None or factory is not None else "digits"
        train = training_section(chosen, steps, lr) if chosen is not None and steps > 0 else None
        if train is None and steps > 0 and not quiet:
            say(stderr, "No training check: a factory's model trains only on a --dataset you name (its input and output sizes are yours).")
        with progress_shown(quiet) as progress:
            found = recommend_for(raw, train, progress, data_driven)
        directory, shown = save(found, result_of(found), out, found.forward.device, render_into)
        if not quiet:
            for table in shown:
                stdout.print(table)
        say(stdout, f"Rules: {directory.path / 'config.yaml'} (initbench run it to measure them again)")


def parse_shape(text: str) -> list[int]:
    """``8,16,64`` → [8, 16, 64]; every size a positive integer."""
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",")]
    except ValueError:
        raise InitbenchError(f"--input-shape {text}: give sizes separated by commas, batch first, e.g. 8,16,64.") from None
    if not shape or min(shape) < 1:
        raise InitbenchError(f"--input-shape {text}: every size must be a positive integer.")
    return shape
