"""Strict JSON for results: a non-finite value is written as ``null`` with ``<key>_nonfinite`` beside
it (``"nan"``, ``"inf"`` or ``"-inf"``), and read back as the float it was.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: The suffix of the key that names a non-finite value written as ``null`` (see :func:`json_safe`).
NONFINITE = "_nonfinite"


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON data: every non-finite float becomes ``None`` (``null``), and the
    mapping holding it gains ``<key>_nonfinite`` naming what it was, so JSON tools and pandas read
    the file without special cases and nothing is lost::

        {"std_last": nan}                  -> {"std_last": null, "std_last_nonfinite": "nan"}
        {"std": [1.0, inf, nan]}           -> {"std": [1.0, null, null], "std_nonfinite": [null, "inf", "nan"]}

    A list's flag lists its items' flags (``null`` for finite ones); mappings inside lists carry
    their own flags.
    """
    if isinstance(value, dict):
        safe: dict[Any, Any] = {}
        for key, item in value.items():
            safe[key] = json_safe(item)
            flag = nonfinite_flag(item)
            if flag is not None:
                safe[f"{key}{NONFINITE}"] = flag
        return safe
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def nonfinite_flag(value: Any) -> Any:
    """What :func:`json_safe` writes beside ``value``: a non-finite float's name (``nan``, ``inf``,
    ``-inf``), a list of its items' flags, or None where there is nothing non-finite to name."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        flags = [nonfinite_flag(item) for item in value]
        return flags if any(flag is not None for flag in flags) else None
    return None


def json_restored(value: Any) -> Any:
    """:func:`json_safe`'s inverse, for data read back from a JSON file: the values its flags name
    become floats again (``nan``, ``inf``, ``-inf``) and the flags are dropped."""
    if isinstance(value, dict):
        return {
            key: flagged(json_restored(item), value.get(f"{key}{NONFINITE}"))
            for key, item in value.items()
            if not (isinstance(key, str) and key.endswith(NONFINITE) and key[: -len(NONFINITE)] in value)
        }
    if isinstance(value, list):
        return [json_restored(item) for item in value]
    return value


def flagged(value: Any, flag: Any) -> Any:
    if isinstance(flag, str):
        return float(flag)
    if isinstance(flag, list) and isinstance(value, list):
        return [flagged(item, item_flag) for item, item_flag in zip(value, flag, strict=True)]
    return value


def read_json(path: Path) -> Any:
    """A JSON file initbench wrote, with its non-finite numbers restored (:func:`json_restored`)."""
    return json_restored(json.loads(path.read_text(encoding="utf-8")))
