"""Terminal output: tables that fit 80 columns without cutting a number, and the progress bar."""

from __future__ import annotations

import io
import math
import re

import pytest
from rich.console import Console

from initbench.outputs.parts.propagation import terminal_rows
from initbench.render.formatting import format_number, reached_text, rich_table


def render(renderable, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def cells(text: str) -> list[str]:
    """Every whitespace-separated token between the table's borders, line by line."""
    return [token for line in text.splitlines() for token in re.split(r"[\s│┃]+", line) if token]


@pytest.mark.parametrize(
    "value, expected",
    [(5.9e30, "5.9e+30"), (1.894e107, "1.9e+107"), (2.8e-16, "2.8e-16"), (0.5816, "0.582"), (9.323, "9.32"), (1234.5, "1234"),
     (0.001234, "0.00123"), (0.0, "0"), (math.nan, "nan"), (-math.inf, "-inf"), (15000, "15000"), (None, "–")],
)
def test_compact_numbers(value, expected: str) -> None:
    assert format_number(value, compact=True) == expected


def test_reports_keep_four_significant_digits() -> None:
    assert format_number(1.894e107) == "1.894e+107" and format_number(0.5816) == "0.5816"


def propagation_summary() -> dict:
    def entry(std: list[float], theory_last: float, chi: float, phase: str, xi: float, verdict: str, first: int | None) -> dict:
        return {
            "std_median_by_layer": std, "verdict": verdict, "first_nonfinite_layer": first,
            "theory": {"theory_std_last": theory_last, "chi1": chi, "phase": phase, "xi_q": xi, "xi_c": xi},
        }

    nan = math.nan
    return {
        "zeros": entry([0.0] * 100, 0.0, 0.0, "ordered", 0.0, "dead", None),
        "random": entry([9.323] + [1e30] * 34 + [nan] * 65, 1.894e107, 128.0, "chaotic", nan, "exploding", 36),
        "xavier_uniform:gain=auto,mode=fan_avg": entry([0.5816] + [1.757e-8] * 98 + [2.801e-16], 7.333e-16, 0.5, "ordered", 1.4427, "vanishing", None),
        "he": entry([0.824] * 99 + [0.7982], 0.8256, 1.0, "critical", math.inf, "stable", None),
    }


@pytest.mark.parametrize("width", [80, 60, 200])
def test_terminal_table_fits_the_width_and_shows_every_number_whole(width: int) -> None:
    columns, rows = terminal_rows(propagation_summary(), 100)
    text = render(rich_table("Activation std by layer (median over 3 seeds)", columns, rows), width)
    assert max(len(line) for line in text.splitlines()) <= width
    tokens = cells(text)
    for row in rows:
        for value in row[1:5]:
            assert format_number(value, compact=True) in tokens
    for number in ("1.9e+107", "7.3e-16", "2.8e-16", "128", "1.44", "0.582", "0.826", "36"):  # theory, χ₁, ξ, non-finite layer
        assert number in tokens, number
    assert "…" not in text


def test_a_long_scheme_spec_gets_a_short_key_and_a_legend() -> None:
    columns, rows = terminal_rows(propagation_summary(), 100)
    text = render(rich_table("title", columns, rows))
    assert "xavier_uniform [1]" in text
    assert "[1] xavier_uniform:gain=auto,mode=fan_avg" in text
    assert "zeros" in text and "[2]" not in text  # short labels stay as they are


def test_a_table_too_wide_for_the_terminal_folds_into_two_repeating_the_label() -> None:
    columns = ("scheme", *(f"layer {index}" for index in range(1, 13)))
    rows = [("he", *(1.234567e-20 * index for index in range(1, 13))), ("xavier", *(9.87e30 + index for index in range(12)))]
    text = render(rich_table("wide", columns, rows))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "wide (1 of 2)" in text and "wide (2 of 2)" in text
    assert text.count("xavier") == 2
    tokens = cells(text)
    for row in rows:
        for value in row[1:]:
            assert format_number(value, compact=True) in tokens


def test_training_table_reports_how_many_seeds_reached_the_target() -> None:
    assert reached_text([4500, None, 4000]) == "2 of 3 reached, median step 4000"
    assert reached_text([None, None]) == "0 of 2 reached"
    assert reached_text([300, 100, 200]) == "3 of 3 reached, median step 200"


def test_progress_shows_rate_eta_and_latest_fields_and_clears_itself() -> None:
    from initbench.outputs.console import RichProgress

    stream = io.StringIO()
    console = Console(file=stream, width=80, force_terminal=True, color_system=None)
    with RichProgress(console) as progress:
        progress.start("training 6 runs", total=10)
        progress.advance(4)
        progress.update(loss=0.0123456, **{"test acc": 0.9})
        live = render(progress._progress, 80)
    assert "4/10" in live and "it/s" in live and "ETA" in live
    assert "median over runs: loss 0.0123, test acc 0.9" in live
    assert max(len(line) for line in live.splitlines()) <= 80
    console.print("next")
    assert stream.getvalue().endswith("next\n")  # the cleared bar leaves the next line whole


def test_silent_progress_takes_every_call_of_the_protocol_and_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    import inspect

    from initbench.core.interfaces import Progress, SilentProgress

    # The protocol's own signatures, so it stands in wherever a Progress is called, by keyword too.
    methods = [name for name, value in vars(Progress).items() if callable(value) and not name.startswith("_")]
    assert {"start", "advance", "update"} <= set(methods)
    for name in methods:
        assert inspect.signature(getattr(SilentProgress, name)) == inspect.signature(getattr(Progress, name)), name
    progress = SilentProgress()
    progress.start("training 6 runs", total=10)
    progress.advance(steps=4)
    progress.update(loss=0.0123456, **{"test acc": 0.9})
    assert capsys.readouterr() == ("", "")


def test_a_long_label_of_short_words_wraps_instead_of_getting_a_key() -> None:
    text = render(rich_table("title", ("scheme", "σ_w²"), [("Xavier = He (gain auto = 1.67)", 2.778), ("LeCun = Xavier (gain 1)", 1.0)]), 40)
    assert "[1]" not in text and "1.67)" in text and "2.78" in text


def test_a_long_point_name_folds_and_the_table_keeps_every_column() -> None:
    rows = [(f"scheme-normal:std={index}_depth-{10 * index}_activation-relu", index, "missing", f"init.scheme=normal:std={index} model.depth={10 * index}") for index in range(3)]
    text = render(rich_table("points", ("point", "stack", "status", "overrides"), rows))
    assert "(1 of 2)" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "model.depth=20" in text and "…" not in text


def test_a_bar_in_a_markdown_cell_stays_in_its_cell() -> None:
    from initbench.render.formatting import markdown_table

    row = markdown_table(["scheme", "std"], [["a|b", 1.5]]).splitlines()[-1]
    assert row == "| a\\|b | 1.5 |"
