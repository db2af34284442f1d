"""Sweeps: a grid over any config keys, one run directory per grid point, shardable across machines.

The package follows the pipeline: :mod:`~initbench.runs.sweeps.grid` (axes, points, the index),
:mod:`~initbench.runs.sweeps.plan` (shards and stacks), :mod:`~initbench.runs.sweeps.launch` (running a
shard here, or submitting shards through submitit) and :mod:`~initbench.runs.sweeps.collect` (merging
finished points into a report; its figures are in :mod:`initbench.render.figures`).

    initbench sweep configs/relu_kaiming.yaml model.depth=10,30,100 init.scheme=xavier,he --out results/depth
    initbench sweep base.yaml model.depth=10,30,100 --out /shared/depth --shard 3/8      # one of 8 machines
    initbench sweep base.yaml model.depth=10,30,100 --out /shared/depth --launcher submitit --partition gpu
    initbench sweep results/depth                        # resume: run whatever is not complete yet
    initbench report results/depth                       # merge what finished into tables and plots

**Axes.** A config's ``sweep:`` section maps dotted keys to lists of values (nested mappings are
flattened, so ``sweep: {model: {depth: [10, 30]}}`` is ``model.depth: [10, 30]``); on the command
line each ``KEY=V1,V2,...`` is one more axis (it replaces a section axis with the same key). Values
are read like overrides, as YAML scalars. A value that contains a comma (``normal:mean=0,std=2``)
needs a YAML list in the section, or ``;`` between the values on the command line:
``init.scheme='normal:mean=0,std=2;he'`` (a single such value: ``init.scheme='normal:mean=0,std=2;'``).

**Points.** The grid is the product of the axes. Each point is the base config (the file without
its ``sweep:`` section) with one ``KEY=VALUE`` override per axis, applied exactly as ``initbench
run`` applies overrides, so a point's ``config.yaml`` (or ``base.yaml`` plus the point's overrides)
reproduces it with ``initbench run``. Every point is validated before anything runs. Points are
ordered with the ``init.*`` axes varying slowest, then the other axes in the order given; each is
named after the values of the axes that vary, ``scheme-he_depth-30`` (characters other than letters,
digits, ``.``, ``+`` and ``-`` become ``-``; a short hash is added only where two names would clash or
a name would be long).

**The sweep directory** (``--out``, default ``results/<name>-sweep-<timestamp>``)::

    sweep.json          the index: base config, axes, every point's name, values and overrides
    base.yaml           the base config, runnable with a point's overrides
    points/<name>/      one ordinary run directory per point (config.yaml, meta.json, CSVs, plots)
    submitit/           job logs, with --launcher submitit
    report-<time>/      what ``initbench report`` writes

Shards and reruns share it: ``sweep.json`` is written only if absent and must equal the one there,
a point already complete is skipped, and an unfinished one is moved aside (see
:class:`~initbench.runs.sweepdir.SweepDirectory`) and run again.

**Sharding.** ``--shard I/N`` runs the points ``I, I+N, I+2N, ...`` of the fixed order, so N machines
(a SLURM ``--array=0-(N-1)``, or any scheduler) split a sweep with no coordination.

**Stacking.** Within a shard, points whose configs differ only in ``init`` (its scheme and the
scheme's options) share a shape: they run as one stacked pass (all their schemes × seeds
together) and are then written as separate point directories, each equal to its run alone (up to
the rounding of the batched matmul, see :mod:`initbench.engines.stacked`). With the ``init`` axes slowest,
every shard holds whole stacks whenever N divides the number of combinations of the other axes.
Training points stack the same way: their runs train as one stacked model, each exactly as alone.
A failure stays with its point: if a stack's pass fails, its points run again one at a time.
"""

from initbench.runs.sweeps.collect import SweepReport, collect
from initbench.runs.sweeps.grid import MAX_NAME, Axis, Point, Sweep, check_no_sweep_section, parse_axis, point_names, section_axes
from initbench.runs.sweeps.launch import LAUNCHERS, open_sweep_directory, point_status, require_submitit, run_shard, shard_job, submit
from initbench.runs.sweeps.plan import Shard, stacks

__all__ = [
    "LAUNCHERS", "MAX_NAME", "Axis", "Point", "Shard", "Sweep", "SweepReport", "check_no_sweep_section", "collect",
    "open_sweep_directory", "parse_axis", "point_names", "point_status", "require_submitit", "run_shard", "section_axes",
    "shard_job", "stacks", "submit",
]  # fmt: skip
