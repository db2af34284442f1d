"""A run's lifecycle on disk: the run directory (the one writer of files), resuming, loading a
finished run back (:class:`~initbench.runs.results.RunResult`), sweeps and ``recommend``.

May import everything below it, down to :mod:`initbench.experiments`.
"""
