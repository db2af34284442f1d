"""Loading a dataset by its spec: a registered name with options, or a user's ``.npz`` file.

A dataset spec is a registered ``NAME``, ``NAME:key=value,...``, a mapping ``{name: NAME, key:
value}``, or the path of a user's ``.npz`` file. Loading takes the *data* seed, which is separate
from the init seed so that one draw of the data can be trained from many initializations.

Example:
    >>> data = load_dataset("circles:noise=0.1", seed=0)
    >>> data.x_train.shape, data.task, data.output_dim
    ((300, 2), 'binary', 1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from initbench.core.errors import InitbenchError
from initbench.core.registry import build, parse_spec
from initbench.data.base import DATASETS, Dataset, check_host_memory
from initbench.data.npz import load_npz


def load_dataset(spec: str | os.PathLike[str] | Mapping[str, Any], seed: int) -> Dataset:
    """Load a registered dataset from its spec, or a user's .npz file when the spec is such a path.

    Args:
        spec: ``NAME``, ``NAME:key=value,...``, a mapping ``{name: NAME, key: value}``, or a path
            ending in ``.npz`` (see :func:`~initbench.data.npz.load_npz`).
        seed: the data seed (≥ 0), separate from the init seed. Datasets with a fixed split
            (digits, .npz files) ignore it.
    """
    if seed < 0:
        raise InitbenchError(f"Data seed {seed} is negative.", hint="Use a data seed ≥ 0.")
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise InitbenchError(f"Dataset {options} has no 'name' key.", hint="For example {name: moons, noise: 0.2}.")
        name = str(options.pop("name"))
    else:
        text = os.fspath(spec)
        # Checked before parse_spec, which would split a path like C:\data\set.npz at its colon.
        if text.lower().endswith(".npz"):
            return load_npz(text)
        name, options = parse_spec(text, "dataset")
    if name.lower().endswith(".npz"):
        if options:
            raise InitbenchError(f"Dataset file '{name}' takes no options, got {', '.join(options)}.")
        return load_npz(name)
    try:
        DATASETS.canonical(name)
    except InitbenchError as error:
        raise InitbenchError(error.message, hint=f"{error.hint} Or give the path of an .npz file with arrays X and y.") from None
    source = build(DATASETS, name, options)
    check_host_memory(source.load_bytes(), f"Dataset '{source.spec()}'", "Give it fewer rows or features.")
    return source.load(seed)
