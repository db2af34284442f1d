"""How many CPU threads torch uses: chosen once, before any work, by the CLI (``--threads`` or
``INITBENCH_THREADS``) or the API, and recorded in every run's ``meta.json`` (``torch_threads``).

torch's own default is one thread per core, which assumes the cores are free. On a shared
machine they are not: on 2 heavily loaded cores, 16 small training runs took 26–31× longer at 2
threads than at 1, and on the same 2 cores almost idle a forward pass took 1.6× longer
(bench/RESULTS.md, "Threads"): every op's threads wait at a barrier for the one the kernel gave
to another process. So the default is the cores nobody else is using when the command starts:

    threads = clamp(round(cores − load average), 1, cores)

where ``cores`` are those this process may run on (its CPU affinity, which a container or
``taskset`` narrows) and the load average is the kernel's last-minute figure (which still counts
a run that ended a minute ago). The numbers do not depend on the count: initbench reduces per
run, along a dimension one thread handles alone (``tests/test_cli_consistency.py``).
"""

from __future__ import annotations

import os

#: The environment variable the CLI reads when ``--threads`` is not given.
ENV_VAR = "INITBENCH_THREADS"


def available_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """The idle cores: ``clamp(round(cores − load), 1, cores)``; ``cores`` and ``load`` default
    to this machine's (see the module docstring)."""
    cores = available_cores() if cores is None else cores
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, round(cores - load)))


def use_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (None: :func:`default_threads`); returns the count."""
    import torch  # deferred for start-up time: the CLI imports this module, and `--help` must not load torch

    count = default_threads() if threads is None else threads
    torch.set_num_threads(count)
    return count
