"""``initbench report DIR``: figures rebuilt from the saved files equal the run's own, a page that
loads nothing from outside and renders in a real browser, and strict JSON for non-finite numbers."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import select
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from initbench.cli.app import app
from initbench.runs.jsonio import json_restored, json_safe
from tests.conftest import read_csv

#: A directory name with markup in it: the page must show it as text.
HOSTILE_NAME = '<b id="x">bold</b> & "quoted"'


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def strict_json(path: Path) -> Any:
    """json.loads that refuses NaN and Infinity, as strict JSON readers do."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def report_path(result: Any) -> Path:
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("Report: "))


def digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def gradients_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three schemes on a linear net: he holds, random (N(0, 1), ×8 per layer) overflows float32 by layer 45."""
    out = tmp_path_factory.mktemp("runs") / HOSTILE_NAME  # in the page's subtitle, and in meta.json's command
    result = invoke(
        "compare", "he", "xavier", "random", "--experiment", "gradients", "--activation", "linear", "--depth", "50", "--width", "64",
        "--batch", "16", "--seeds", "2", "--out", out, "-q",
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def gradients_report(gradients_run: Path) -> Path:
    result = invoke("report", gradients_run)
    assert "Activation std by layer" in result.stdout and "exploding" in result.stdout  # the summary table, as the run printed it
    return report_path(result)


# --- strict JSON ----------------------------------------------------------------------------------


def test_json_safe_writes_null_with_a_flag_and_reads_back_exactly() -> None:
    value = {
        "std_last": math.nan, "loss": {"median": math.inf, "min": -math.inf, "max": 2.5}, "first": None,
        "by_layer": [1.0, math.inf, math.nan], "nested": [[math.nan, 1.0]], "modules": [{"fan_in": 3, "std": -math.inf}], "word": "nan",
    }  # fmt: skip
    text = json.dumps(json_safe(value), allow_nan=False)
    written = json.loads(text, parse_constant=lambda constant: pytest.fail(f"{constant} in strict JSON"))
    assert written["std_last"] is None and written["std_last_nonfinite"] == "nan"
    assert written["loss"] == {"median": None, "median_nonfinite": "inf", "min": None, "min_nonfinite": "-inf", "max": 2.5}
    assert written["by_layer"] == [1.0, None, None] and written["by_layer_nonfinite"] == [None, "inf", "nan"]
    assert written["modules"] == [{"fan_in": 3, "std": None, "std_nonfinite": "-inf"}]
    assert "first_nonfinite" not in written and "word_nonfinite" not in written  # None and the text "nan" are not numbers
    restored = json_restored(written)
    assert json.dumps(restored, sort_keys=True) == json.dumps(value, sort_keys=True)  # NaN spelled NaN on both sides


def test_summary_json_is_strict_and_flags_what_the_csv_says_is_non_finite(gradients_run: Path) -> None:
    summary = strict_json(gradients_run / "summary.json")
    strict_json(gradients_run / "meta.json")
    rows = read_csv(gradients_run / "layer_stats.csv")
    last = max(int(row["layer"]) for row in rows)
    random_last = [row["std"] for row in rows if row["scheme"] == "random" and int(row["layer"]) == last]
    assert random_last == ["nan", "nan"]  # the reference: both seeds overflowed
    entry = summary["schemes"]["random"]
    assert entry["std_last"] is None and entry["std_last_nonfinite"] == "nan"
    he_last = statistics.median(float(row["std"]) for row in rows if row["scheme"] == "he" and int(row["layer"]) == last)
    assert summary["schemes"]["he"]["std_last"] == pytest.approx(he_last, rel=1e-12) and "std_last_nonfinite" not in summary["schemes"]["he"]
    flags = entry["std_median_by_layer_nonfinite"]
    csv_nonfinite = [all(not math.isfinite(float(row["std"])) for row in rows if row["scheme"] == "random" and int(row["layer"]) == layer) for layer in range(1, last + 1)]
    assert [flag is not None for flag in flags] == csv_nonfinite


# --- the report folder ----------------------------------------------------------------------------


def test_a_report_is_a_new_folder_inside_the_run_that_changes_nothing_there(gradients_run: Path, gradients_report: Path) -> None:
    before = digests(gradients_run)
    quiet = invoke("report", gradients_run, "-q")
    second = report_path(quiet)
    assert quiet.stdout.splitlines() == [f"Report: {second}"]
    assert gradients_report.parent == second.parent == gradients_run and gradients_report != second and second.name.startswith("report-")
    after = digests(gradients_run)
    assert {name: digest for name, digest in after.items() if not name.startswith(second.name)} == before
    assert strict_json(second / "meta.json")["status"] == "complete"
    assert sorted(path.name for path in second.iterdir()) == sorted(path.name for path in gradients_report.iterdir())


def test_figures_rebuilt_from_the_csv_files_equal_the_runs_own(gradients_run: Path, gradients_report: Path) -> None:
    """The run drew its figures from the measurements in memory; the report draws them from the
    CSVs alone. Same pixels means nothing was lost on the way through the files."""
    report = gradients_report
    for name in ("std_by_layer.png", "grad_std_by_layer.png", "histograms.png"):
        assert (report / name).read_bytes() == (gradients_run / name).read_bytes(), name


def test_the_theory_table_is_the_median_over_seeds_beside_the_csv_theory(gradients_run: Path, gradients_report: Path) -> None:
    report = gradients_report
    rows = read_csv(gradients_run / "layer_stats.csv")
    theory = read_csv(report / "theory.csv")
    assert {row["scheme"] for row in theory} == {"he", "xavier", "random"}
    for row in theory:
        at_layer = [source for source in rows if source["scheme"] == row["scheme"] and source["layer"] == row["layer"]]
        seeds = [float(source["grad_std"]) for source in at_layer if source["grad_std"] != "nan"]  # as the summary: NaN seeds left out
        measured = statistics.median(seeds) if seeds else math.nan
        predicted = float(at_layer[0]["theory_grad_std"])
        assert float(row["grad_std measured"]) == pytest.approx(measured, rel=1e-12, nan_ok=True)
        assert float(row["grad_std theory"]) == predicted
        assert float(row["grad_std measured / theory"]) == pytest.approx(measured / predicted, rel=1e-12, nan_ok=True)
    assert any(row["grad_std measured"] == "nan" for row in theory)  # random's overflow is in the table, as such


def test_report_html_is_self_contained_escaped_and_shows_non_finite_values(gradients_run: Path, gradients_report: Path) -> None:
    page = (gradients_report / "report.html").read_text()
    assert "<b " not in page and "&lt;b id=&quot;x&quot;&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;" in page
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "http://" not in page and "https://" not in page
    assert "<script" not in page and "@import" not in page and "url(" not in page
    images = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(images) == 3  # std_by_layer, histograms, grad_std_by_layer
    assert re.search(r'<td class="number nonfinite"[^>]*>nan</td>', page)  # random's last layer overflowed
    for section in ("Config", "Activation std by layer", "Measured against theory", "Figures", "Environment"):
        assert f"<h2>{section}</h2>" in page
    meta = json.loads((gradients_run / "meta.json").read_text())
    for key in ("torch", "git_commit", "device"):
        assert f"<td>{key}</td>" in page and str(meta[key]) in page


# --- other kinds of directory -----------------------------------------------------------------------


def test_a_phase_diagram_rebuilt_from_phase_csv_equals_the_runs(tmp_path: Path) -> None:
    result = invoke("phase", "--activation", "tanh", "--sw2", "0.5:3:5", "--sb2", "0:0.2:3", "--out", tmp_path / "phase", "-q")
    assert result.exit_code == 0, result.output
    report = report_path(invoke("report", tmp_path / "phase"))
    assert (report / "phase.png").read_bytes() == (tmp_path / "phase" / "phase.png").read_bytes()
    counts = {row["phase"]: int(row["cells"]) for row in read_csv(report / "summary.csv")}
    phases = [row["phase"] for row in read_csv(tmp_path / "phase" / "phase.csv")]
    assert counts == {phase: phases.count(phase) for phase in set(phases)}


def test_a_training_report_redraws_the_curves_and_the_boundaries_from_the_saved_files(tmp_path: Path) -> None:
    result = invoke("compare", "zeros", "he", "--experiment", "train", "--dataset", "moons", "--steps", "30", "--out", tmp_path / "t", "-q")
    assert result.exit_code == 0, result.output
    report = report_path(invoke("report", tmp_path / "t"))
    for name in ("decision_boundary.png", "training_curves.png"):  # from decision_boundary.npz, train_metrics.csv and training.json
        assert (report / name).read_bytes() == (tmp_path / "t" / name).read_bytes(), name
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())["schemes"]
    rows = {row["scheme"]: row for row in read_csv(report / "summary.csv")}
    assert float(rows["he"]["test acc"]) == summary["he"]["test_acc"]["median"]
    page = (report / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 2


def test_report_refuses_what_is_neither_a_run_nor_a_sweep_and_a_report_itself(tmp_path: Path, gradients_report: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke("report", tmp_path / "empty")
    assert result.exit_code == 2 and "neither a run nor a sweep directory" in result.output
    result = invoke("report", gradients_report)
    assert result.exit_code == 2 and "is a report" in result.output


# --- in a real browser ------------------------------------------------------------------------------


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    JSON messages ending in a NUL byte, in on fd 3, out on fd 4). Standard library only."""

    def __init__(self, executable: str, timeout: float = 90.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="initbench-chromium-")
        to_browser, self._input = os.pipe()
        self._output, from_browser = os.pipe()
        arguments = [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={self.profile}"]
        self.process = subprocess.Popen(  # bash puts the pipes on the fds Chromium reads and writes
            ["bash", "-c", f'exec "$@" 3<&{to_browser} 4>&{from_browser}', "chromium", *arguments],
            pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self.deadline = time.monotonic() + timeout
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._last_id = 0

    def receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._output], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._output, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        os.write(self._input, json.dumps(message).encode() + b"\0")
        while (answer := self.receive()).get("id") != self._last_id:
            self.events.append(answer)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def load(self, page: Path) -> tuple[str, list[dict[str, Any]]]:
        """Open ``page`` in a new tab and wait for its load event; returns the session and the page's images."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        while not any(event.get("method") == "Page.loadEventFired" for event in self.events):
            self.events.append(self.receive())
        script = "JSON.stringify(Array.from(document.images, image => ({alt: image.alt, complete: image.complete, width: image.naturalWidth})))"
        images = json.loads(self.call("Runtime.evaluate", {"expression": script, "returnByValue": True}, session)["result"]["value"])
        return session, images

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions, and the browser's own error log (a blocked load, a CSP violation)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(str(params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._input)
        os.close(self._output)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Any:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it where it can)")
    opened = Browser(executable)
    yield opened
    opened.close()


def test_report_html_renders_in_chromium_with_every_figure_and_no_errors(browser: Browser, gradients_report: Path) -> None:
    report = gradients_report
    _, images = browser.load(report / "report.html")
    figures = sorted(path.name for path in report.glob("*.png"))
    assert len(images) == len(figures) == 3
    assert all(image["complete"] and image["width"] > 0 for image in images), images
    assert browser.errors() == []


def test_the_browser_check_catches_an_outside_resource_and_a_broken_figure(browser: Browser, gradients_report: Path, tmp_path: Path) -> None:
    """The check above can fail: a page that loads from the net, or whose figure does not decode, is caught."""
    page = (gradients_report / "report.html").read_text()
    spoiled = page.replace("<h1>", '<img src="https://example.com/figure.png" alt="outside"><img src="data:image/png;base64,AAAA" alt="broken"><h1>', 1)
    (tmp_path / "spoiled.html").write_text(spoiled)
    browser.events.clear()
    _, images = browser.load(tmp_path / "spoiled.html")
    widths = {image["alt"]: image["width"] for image in images}
    assert widths["outside"] == 0 and widths["broken"] == 0
    assert any("example.com" in error and "Content Security Policy" in error for error in browser.errors())


def test_a_run_whose_plugin_is_gone_still_reports(tmp_path: Path) -> None:
    """Nothing runs in a report: a config naming a plugin this machine cannot import still reports."""
    run = tmp_path / "plugin-run"
    assert invoke("compare", "tests.plugin_schemes:scaled_normal", "--depth", "3", "--width", "8", "--batch", "8", "--out", run, "-q").exit_code == 0
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("tests.plugin_schemes", "gone.elsewhere"))
    report = report_path(invoke("report", run, "-q"))
    assert (report / "report.html").is_file() and (report / "std_by_layer.png").is_file()


def test_report_on_a_file_says_it_is_a_file(tmp_path: Path) -> None:
    note = tmp_path / "notes.md"
    note.write_text("not a run\n")
    result = invoke("report", note)
    assert result.exit_code == 2 and "is a file, not a run or sweep directory" in result.stderr


def test_a_recommend_directory_reports_its_layers_and_training_check(tmp_path: Path) -> None:
    run = tmp_path / "rec"
    assert invoke("recommend", "--arch", "mlp", "--depth", "3", "--width", "8", "--steps", "5", "--seeds", "1", "--out", run, "-q").exit_code == 0
    result = invoke("report", run)
    assert "Per layer" in result.stdout and "blocks.2.0" in result.stdout
    page = (report_path(result) / "report.html").read_text()
    assert "Training check" in page and "σ_w² rules" in page
