"""Golden outputs: run every shipped config and the README's commands, and hash what they write.

    python tests/golden/golden.py save  OUT_DIR   # run everything into OUT_DIR, write OUT_DIR/manifest.json
    python tests/golden/golden.py check OUT_DIR   # run again into OUT_DIR, compare with tests/golden/manifest.json

A redesign must leave every hash unchanged, or explain each difference. meta.json is left out (it
records times, the host and the command line); everything else a run writes is hashed: config.yaml,
the CSV and JSON tables, summary.md and the PNG figures. This takes several minutes (the shipped
training configs train for real), so it is a script to run by hand, not a test.

The one explained difference: ``summary.json`` records which engine ran and why (its top-level
``engine`` key, from ``initbench.engines.select``), which the saved manifest predates. ``summary.json``
is hashed without that key, re-serialized exactly as the run wrote it (indent 2), so everything
else in it must still be byte-identical. The renderer that draws every figure from the saved files
added two data files the manifest predates, :data:`FILES_AFTER_MANIFEST`: they are reported as new
(listed, not failed), so every file the base wrote must still be byte-identical.

The hashes hold on one machine: the same code on another CPU differs in the last bits of its
floating-point kernels (131 of 411 files did between two sessions' machines). So save the manifest
from the base commit on the machine you check on (``git worktree add --detach BASE <commit>``, copy
this script there, ``PYTHONPATH=BASE python BASE/tests/golden/golden.py save DIR``, then copy its
manifest here). The committed manifest is base ``e61775e``, saved that way on 2026-12-07.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "tests" / "golden" / "manifest.json"

#: name -> the initbench arguments (``--out`` is added); every shipped config, then the README's commands.
COMMANDS: dict[str, list[str]] = {
    **{f"config-{path.stem}": ["run", str(path.relative_to(REPO))] for path in sorted((REPO / "configs").glob("*.yaml"))},
    **{f"tiny-{path.stem}": ["run", str(path.relative_to(REPO))] for path in sorted((REPO / "configs" / "tiny").glob("*.yaml"))},
    "readme-run-override": ["run", "configs/relu_kaiming.yaml", "model.depth=50", "init.scheme=xavier_normal"],
    "readme-compare": ["compare", "zeros", "random", "xavier", "he"],
    "readme-compare-seeds": ["compare", "zeros", "random", "xavier", "he", "--seeds", "3"],
    "readme-compare-tanh": ["compare", "normal:std=0.01", "xavier_uniform:gain=auto", "he", "--activation", "tanh", "--depth", "100", "--width", "256"],
    "readme-compare-gradients": ["compare", "xavier_uniform:gain=auto", "he", "--activation", "tanh", "--experiment", "gradients"],
    "readme-compare-circles": ["compare", "zeros", "normal:std=10", "he", "--config", "configs/circles_dlai.yaml", "--seeds", "3"],
    "readme-compare-moons": ["compare", "zeros", "he", "--experiment", "train", "--dataset", "moons", "--steps", "2000"],
    "readme-sigmoid": ["run", "configs/glorot_tanh_sigmoid.yaml", "model.activation=sigmoid"],
    "readme-phase": ["phase", "--activation", "tanh"],
    "readme-sweep": ["sweep", "configs/relu_kaiming.yaml", "model.depth=10,30,100,300", "model.activation=tanh,relu", "init.scheme=xavier,he,orthogonal"],
}
#: Commands that print their result instead of writing a directory: their stdout is hashed.
PRINTED: dict[str, list[str]] = {
    "readme-gain-json": ["gain", "gelu", "--json"],
    **{f"list-{what}": ["list", what] for what in ("schemes", "activations", "datasets", "experiments")},
}
#: The checkpoint demo's second step loads the file its first step saved, at the path its config
#: names relative to where it runs: both run inside OUT_DIR, the first into that path, in order.
CHAINED: dict[str, Path | None] = {"config-checkpoint_pretrain": Path("results/checkpoint_pretrain"), "config-checkpoint_finetune": None}
COMMANDS = {name: args for name, args in COMMANDS.items() if name not in CHAINED} | {name: COMMANDS[name] for name in CHAINED}


#: Top-level summary.json keys newer than the manifest, left out of its hash (see the module docstring).
SUMMARY_KEYS_AFTER_MANIFEST = ("engine",)
#: Data files newer than the manifest: the training facts and the decision-boundary grid the
#: reporter draws from (see the module docstring).
FILES_AFTER_MANIFEST = ("training.json", "decision_boundary.npz")


def hashed_bytes(path: Path) -> bytes:
    """What is hashed of ``path``: its bytes; for summary.json, without :data:`SUMMARY_KEYS_AFTER_MANIFEST`."""
    if path.name != "summary.json":
        return path.read_bytes()
    summary = json.loads(path.read_text())
    for key in SUMMARY_KEYS_AFTER_MANIFEST:
        summary.pop(key, None)
    return (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode()


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except meta.json and report folders' timestamps."""
    hashes = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "meta.json":
            relative = path.relative_to(root).as_posix()
            if relative.startswith("report-"):
                continue
            hashes[relative] = hashlib.sha256(hashed_bytes(path)).hexdigest()
    return hashes


def run_all(out: Path) -> dict[str, dict[str, str]]:
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, str]] = {}
    for name, args in COMMANDS.items():
        target, cwd = out / name, REPO
        if name in CHAINED:
            target, cwd = out / (CHAINED[name] or name), out
            target.parent.mkdir(parents=True, exist_ok=True)
            args = [args[0], str(REPO / args[1]), *args[2:]]
        print(f"{name}: initbench {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, "-m", "initbench", *args, "--out", str(target), *(["--quiet"] if args[0] != "phase" else [])], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        manifest[name] = hash_tree(target)
    for name, args in PRINTED.items():
        printed = subprocess.run([sys.executable, "-m", "initbench", *args], cwd=REPO, check=True, capture_output=True).stdout
        (out / f"{name}.txt").write_bytes(printed)
        manifest[name] = {"stdout": hashlib.sha256(printed).hexdigest()}
    return manifest


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "check"):
        print(__doc__)
        return 2
    manifest = run_all(Path(sys.argv[2]))
    if sys.argv[1] == "save":
        MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        print(f"wrote {MANIFEST}")
        return 0
    expected = json.loads(MANIFEST.read_text())
    differences = [
        f"{name}/{file}: {'missing' if file not in manifest.get(name, {}) else 'new' if file not in files else 'differs'}"
        for name in sorted(set(expected) | set(manifest))
        for files in [expected.get(name, {})]
        for file in sorted(set(files) | set(manifest.get(name, {})))
        if files.get(file) != manifest.get(name, {}).get(file)
    ]
    explained = [line for line in differences if line.endswith(": new") and line.split(":")[0].rsplit("/", 1)[-1] in FILES_AFTER_MANIFEST]
    differences = [line for line in differences if line not in explained]
    if explained:
        print(f"{len(explained)} new data files the manifest predates ({', '.join(FILES_AFTER_MANIFEST)}): explained")
    print("\n".join(differences) or "all golden outputs identical")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
