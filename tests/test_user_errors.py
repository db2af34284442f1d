"""Every user error is exit 2 with one clear message naming what is wrong; output prints literally.

One test per class of mistake, each over several members of the class.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from initbench.config.loading import load_config, read_yaml
from initbench.core.errors import InitbenchError
from initbench.core.yamlinput import MAX_YAML_CHARS, load_yaml
from initbench.render.formatting import rich_table

TINY = "name: tiny\ndevice: cpu\nmodel: {depth: 2, width: 4}\ninit: {scheme: he}\ninput: {batch: 8}\n"
TINY_COMPARE = ("--depth", "2", "--width", "4", "--batch", "8", "--device", "cpu")

#: 9 levels of 9 aliases: 9⁹ ≈ 387 million strings from 400 bytes.
ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
    for previous, name in zip([None, *"abcdefgh"], "abcdefghi")
)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def exits_2_naming(result, *names: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Failed:" not in result.output
    for name in names:
        assert name in result.stderr, (name, result.stderr)


# --- YAML ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("run", "{tiny}", "model.depth=[1"), ["override model.depth", "line 1"]),
        (("run", "{tiny}", "init.gain={a: 1"), ["override init.gain"]),
        (("run", "{tiny}", "model.activation=leaky_relu:negative_slope=[0"), ["option 'negative_slope'"]),
        (("compare", "normal:std=[1", *TINY_COMPARE), ["option 'std'", "normal:std=[1"]),
        (("compare", "he", "--activation", "elu:alpha={", *TINY_COMPARE), ["option 'alpha'"]),
        (("run", "{tiny}", "model.depth={a: 1, a: 2}"), ["override model.depth", "'a' appears twice"]),
    ],
)
def test_yaml_syntax_errors_in_overrides_and_options(cli, tiny: Path, args: tuple[str, ...], names: list[str]) -> None:
    exits_2_naming(cli(*(arg.replace("{tiny}", str(tiny)) for arg in args)), *names)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("model: {depth: 3}\nmodel: {depth: 4}\n", ["key 'model' appears twice", "line 2"]),
        ("model: {depth: 3, depth: 4}\n", ["key 'depth' appears twice"]),
        ("init: {scheme: he, bias: zeros, bias: default}\n", ["key 'bias' appears twice"]),
    ],
)
def test_duplicate_yaml_keys_are_errors(cli, tmp_path: Path, text: str, names: list[str]) -> None:
    config = tmp_path / "dup.yaml"
    config.write_text(text)
    exits_2_naming(cli("run", config), *names)


def test_an_alias_bomb_is_refused_at_once_and_never_expanded(cli, tmp_path: Path) -> None:
    assert len(ALIAS_BOMB) < 400
    start = time.perf_counter()
    with pytest.raises(InitbenchError, match="once aliases are expanded"):
        load_yaml(ALIAS_BOMB, "bomb")
    assert time.perf_counter() - start < 1.0
    config = tmp_path / "bomb.yaml"
    config.write_text(ALIAS_BOMB)
    exits_2_naming(cli("run", config), "bomb.yaml", "once aliases are expanded")


def test_aliases_within_bounds_work_and_their_errors_stay_short(cli, tmp_path: Path) -> None:
    """6561 aliased values are allowed, but an error about them prints a few, not all."""
    levels = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    assert load_yaml(levels + "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n", "test")["d"][8][8][8][8] == 1
    config = tmp_path / "aliases.yaml"
    config.write_text("sizes: &s [[1, 1, 1, 1, 1, 1, 1, 1, 1]]\nw: &w [*s, *s, *s, *s, *s, *s, *s, *s, *s]\nexperiment: train\nmodel: {hidden: [*w, *w, *w, *w, *w, *w, *w, *w, *w]}\n")
    result = cli("run", config)
    exits_2_naming(result, "model.hidden")
    assert len(result.stderr) < 3000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "refers to a node that contains it"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nesting deeper than"),
        ("a: '" + "x" * (MAX_YAML_CHARS + 1) + "'\n", "longer than"),
        ("a: &a '" + "x" * 100_000 + "'\nb: [" + ", ".join(["*a"] * 2000) + "]\n", "once aliases are expanded"),
    ],
    ids=["recursive alias", "deep nesting", "huge text", "aliases to a long string"],
)
def test_yaml_input_is_bounded(text: str, message: str) -> None:
    with pytest.raises(InitbenchError, match=message):
        load_yaml(text, "test")


def test_a_config_that_never_ends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InitbenchError, match="longer than"):
        read_yaml(Path("/dev/zero"))


def test_yaml_reads_exponents_without_a_dot_as_floats_in_files_too(tmp_path: Path) -> None:
    config = tmp_path / "lr.yaml"
    config.write_text("experiment: train\ntrain: {lr: 1e-3, dataset: moons}\ninit: {scheme: he}\n")
    assert load_config(config, []).train.lr == 1e-3


# --- Numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["seed=100000000000000000000000"], ["seed"]),
        (["seed=18446744073709551615", "seeds=2"], ["seed 18446744073709551615 with seeds 2"]),
        (["model.depth=100000000000000000000000"], ["model.depth"]),
        (["experiment=train", "train.data_seed=100000000000000000000000"], ["train.data_seed"]),
        (["init.scheme=xavier", "init.gain=1e200"], ["init scheme 'xavier:gain=1e+200'", "overflow float32"]),
        (["init.scheme=xavier", "init.gain=1e400"], ["gain", "finite"]),
        (["init.scheme=normal", "init.std=1e39"], ["init scheme 'normal:std=1e+39'", "overflow float32"]),
        (["init.scheme=uniform", "init.a=-1e300", "init.b=1e300"], ["overflow float32"]),
        (["model.bias=true", "init.bias=normal:std=1e300"], ["init.bias 'normal:std=1e300'", "overflow"]),
        (["experiment=train", "train.lr=1e400"], ["train.lr", "finite"]),
        (["model.activation=elu:alpha=1e39"], ["model.activation 'elu:alpha=1e39'", "overflows float32"]),
        (["dtype=float64", "model.activation=leaky_relu:negative_slope=1e200"], ["model.activation", "overflows float64"]),
        (["dtype=float64", "init.scheme=normal", "init.std=1e200"], ["init scheme 'normal:std=1e+200'", "overflow float64"]),
    ],
)
def test_numbers_that_overflow(cli, tiny: Path, overrides: list[str], names: list[str]) -> None:
    exits_2_naming(cli("run", tiny, *overrides), *names)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("compare", "uniform:a=-.inf,b=.inf", *TINY_COMPARE), ["a: Input should be a finite number", "b: Input should be a finite number"]),
        (("compare", "constant:value=.nan", *TINY_COMPARE), ["value: Input should be a finite number"]),
        (("compare", "xavier:gain=.nan", *TINY_COMPARE), ["gain", "finite number"]),
        (("compare", "truncated_normal:a=-.inf", *TINY_COMPARE), ["a: Input should be a finite number"]),
        (("compare", "he", "--experiment", "train", "--lr", "nan"), ["--lr"]),
        (("compare", "he", "--experiment", "train", "--lr", "inf"), ["--lr"]),
        (("gain", "tanh", "--sb2", "inf"), ["--sb2"]),
        (("gain", "elu:alpha=1e39"), ["activation 'elu:alpha=1e39'", "overflows float32"]),
        (("phase", "--activation", "leaky_relu:negative_slope=1e300"), ["--activation", "overflows float32"]),
        (("phase", "--sw2", "0:inf:3"), ["--sw2", "finite"]),
        (("phase", "--sb2", "nan:1:3"), ["--sb2", "finite"]),
        (("compare", "he", "--experiment", "train", "--dataset", "circles:noise=.nan"), ["noise", "finite"]),
    ],
)
def test_non_finite_numbers(cli, tmp_path: Path, args: tuple[str, ...], names: list[str]) -> None:
    exits_2_naming(cli(*args), *names)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("run", "{tiny}", "model.depth=true"), ["model.depth", "valid integer"]),
        (("run", "{tiny}", "seeds=true"), ["seeds", "valid integer"]),
        (("run", "{tiny}", "input.batch=false"), ["input.batch", "valid integer"]),
        (("run", "{tiny}", "model.depth='3'"), ["model.depth", "valid integer"]),
        (("run", "{tiny}", "model.depth=3.0"), ["model.depth", "valid integer"]),
        (("run", "{tiny}", "model.bias=1"), ["model.bias", "valid boolean"]),
        (("run", "{tiny}", "experiment=train", "model.hidden=[true]"), ["model.hidden.0"]),
        (("compare", "normal:std=true", *TINY_COMPARE), ["std", "valid number"]),
        (("compare", "he", "--activation", "leaky_relu:negative_slope=true", *TINY_COMPARE), ["negative_slope"]),
        (("compare", "he", "--experiment", "train", "--dataset", "circles:n_train=true"), ["n_train", "valid integer"]),
    ],
)
def test_booleans_and_strings_are_not_numbers(cli, tiny: Path, args: tuple[str, ...], names: list[str]) -> None:
    exits_2_naming(cli(*(arg.replace("{tiny}", str(tiny)) for arg in args)), *names)


# --- Lists, options, ignored settings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("run", "{tiny}", "init.scheme=null", "init.schemes=[]"), ["init.schemes", "at least 1 item"]),
        (("compare", "normal:std=1,std=2", *TINY_COMPARE), ["option 'std' twice"]),
        (("compare", "he", "--activation", "elu:alpha=1,alpha=2", *TINY_COMPARE), ["option 'alpha' twice"]),
        (("run", "{tiny}", "init.scheme=normal:std=1", "init.std=2"), ["option std is given twice"]),
        (("compare", "he", "--dataset", "moons", *TINY_COMPARE), ["--dataset", "only --experiment train"]),
        (("compare", "he", "--steps", "5", "--lr", "0.1"), ["--steps, --lr"]),
        (("compare", "he", "--experiment", "train", "--batch", "8"), ["--batch", "ignores"]),
        (("run", "{tiny}", "train.steps=5"), ["train.steps", "only experiment train"]),
        (("run", "{tiny}", "experiment=train", "train.optimizer=adam", "train.momentum=0.9"), ["train.momentum", "adam ignores it"]),
    ],
)
def test_empty_duplicated_and_ignored_options(cli, tiny: Path, args: tuple[str, ...], names: list[str]) -> None:
    exits_2_naming(cli(*(arg.replace("{tiny}", str(tiny)) for arg in args)), *names)


def test_a_saved_adam_config_still_runs(tiny: Path) -> None:
    """momentum is refused only where it would change something: saved configs write its default 0."""
    config = load_config(tiny, ["experiment=train", "train.optimizer=adam"])
    assert config.train.momentum == 0 and "momentum: 0.0" in config.to_yaml()


# --- Data ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "names"),
    [
        ("circles:noise=1e300", ["Dataset 'circles:noise=1e+300'", "x_train has 600 value(s) that are NaN or infinite"]),
        ("teacher:noise=1e300", ["y_train", "NaN or infinite"]),
        ("{zero}", ["X has no features"]),
        ("{zero_test}", ["X_test has no features"]),
    ],
)
def test_data_the_network_cannot_use(cli, tmp_path: Path, dataset: str, names: list[str]) -> None:
    zero = tmp_path / "zero.npz"
    np.savez(zero, X=np.zeros((10, 0)), y=np.arange(10) % 2)
    zero_test = tmp_path / "zero_test.npz"
    np.savez(zero_test, X=np.zeros((10, 3)), y=np.arange(10) % 2, X_test=np.zeros((4, 0)), y_test=np.arange(4) % 2)
    dataset = dataset.replace("{zero}", str(zero)).replace("{zero_test}", str(zero_test))
    exits_2_naming(cli("compare", "he", "--experiment", "train", "--dataset", dataset, "--steps", "1"), *names)


@pytest.fixture
def loop(tmp_path: Path) -> Path:
    """A symbolic link that points, through another, at itself."""
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    return tmp_path / "loop_a"


@pytest.mark.parametrize(
    "args",
    [
        ("run", "{loop}"),
        ("compare", "he", "--config", "{loop}"),
        ("run", "{tiny}", "--out", "{loop}/out"),
        ("compare", "he", *TINY_COMPARE, "--out", "{loop}"),
        ("compare", "he", "--experiment", "train", "--dataset", "{loop}.npz"),
        ("sweep", "{loop}", "model.depth=2,3"),
        ("sweep", "{tiny}", "model.depth=2,3", "--out", "{loop}"),
        ("phase", "--out", "{loop}"),
    ],
)
def test_a_symlink_loop_is_a_user_error(cli, tiny: Path, loop: Path, args: tuple[str, ...]) -> None:
    if "{loop}.npz" in args:
        Path(f"{loop}.npz").symlink_to(f"{loop}.npz")
    result = cli(*(arg.replace("{tiny}", str(tiny)).replace("{loop}", str(loop)) for arg in args))
    exits_2_naming(result, "loop_a")


# --- Output -------------------------------------------------------------------------------------


def test_paths_with_brackets_print_literally(cli, tmp_path: Path) -> None:
    folder = tmp_path / "a[bold]b"
    folder.mkdir()
    config = folder / "t[red].yaml"
    config.write_text(TINY)
    out = folder / "o[/bold]x"
    out.parent.mkdir()  # "o[": --out's folder must exist
    result = cli("run", config, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert f"Results: {out}" in result.stdout
    missing = cli("run", folder / "nope[/red].yaml")
    exits_2_naming(missing, str(folder / "nope[/red].yaml"))
    taken = cli("run", config, "--out", out)
    exits_2_naming(taken, f"--out {out} already exists")


def test_failure_messages_print_literally(cli, tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from initbench.experiments import propagation

    def fail(*args, **kwargs):
        raise RuntimeError("[/bold] unbalanced [red]tags")

    monkeypatch.setattr(propagation, "measure_net", fail)
    result = cli("run", tiny, "--out", tiny.parent / "f")
    assert result.exit_code == 1 and "RuntimeError: [/bold] unbalanced [red]tags" in result.stderr


def test_rich_tables_show_titles_and_cells_literally() -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(rich_table("t[bold]x", ("scheme", "verdict"), [("a[red]b", "stable"), ("[/x]", "dead")]))
    text = console.file.getvalue()
    assert "t[bold]x" in text and "a[red]b" in text and "[/x]" in text


@pytest.mark.parametrize("columns", ["0", "1", "5", "abc"])
def test_output_at_unusable_terminal_widths(cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, columns: str) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    result = cli("compare", "he", *TINY_COMPARE, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"Results: {tmp_path / 'out'}" in result.stdout
    assert "he " in result.stdout and "verdict" in result.stdout  # the table, at a readable width
    error = cli("compare", "xaviar", *TINY_COMPARE)
    exits_2_naming(error, "Unknown scheme 'xaviar'")


def test_output_in_an_ascii_locale(tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parent.parent)  # this checkout, whatever the working directory
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])), "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0", "COLUMNS": "120"}
    run = subprocess.run(
        [sys.executable, "-m", "initbench", "compare", "he", *TINY_COMPARE, "--activation", "tanh", "--out", str(tmp_path / "out")],
        capture_output=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert f"Results: {tmp_path / 'out'}".encode() in run.stdout
    assert "\\u03c7\\u2081".encode() in run.stdout  # χ₁ in the table header, escaped rather than fatal
    error = subprocess.run([sys.executable, "-m", "initbench", "gain", "tahn"], capture_output=True, env=env, cwd=tmp_path, timeout=300)
    assert error.returncode == 2 and b"Did you mean 'tanh'" in error.stderr
