"""The ``checkpoint`` scheme: a model's tensors loaded from a ``state_dict`` file (``weights_only``),
with a fallback scheme for whatever the file does not hold.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import stat
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from pydantic import PrivateAttr
from torch import nn

from initbench.core.errors import InitbenchError
from initbench.nets.activations import Activation
from initbench.schemes.base import SCHEMES, InitScheme, inner_scheme, own_state_dict

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext


def check_regular_file(path: str) -> os.stat_result:
    """``path``'s stat, or a user error when it is missing or not a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InitbenchError(f"Checkpoint file '{path}' does not exist.", hint="Give the path of a file saved with torch.save(model.state_dict(), path), or by train.save_models.") from None
    except (OSError, ValueError) as error:  # no permission, a name too long, a NUL byte in it
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InitbenchError(f"Checkpoint file '{path}' cannot be opened ({reason}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise InitbenchError(f"Checkpoint '{path}' is not a file.")
    return info


@functools.lru_cache(maxsize=4)
def _load_state_dict(path: str, modified: int, size: int) -> dict[str, torch.Tensor]:
    """The file's state dict, loaded once per version of the file (``modified``, ``size``)."""
    try:
        with warnings.catch_warnings():  # torch warns about what it refuses; the error below says it in one line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses code (a pickle that would call a function) with a long message
        first_line = (str(error).strip().splitlines() or [""])[0]
        if "Weights only load failed" in first_line:  # torch's advice there is to load it with code: not ours to give
            first_line = "it holds Python objects besides tensors, which loading would run code to build"
        raise InitbenchError(
            f"Checkpoint file '{path}' cannot be loaded as weights only: {type(error).__name__}: {first_line}",
            hint="initbench loads checkpoints with torch.load(weights_only=True), which runs no code: save a state dict, torch.save(model.state_dict(), path).",
        ) from None
    if not isinstance(state, Mapping) or not state or not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        nested = [key for key in ("state_dict", "model_state_dict", "model") if isinstance(state, Mapping) and isinstance(state.get(key), Mapping)]
        raise InitbenchError(
            f"Checkpoint file '{path}' holds a {type(state).__name__}, not a state dict (names → tensors)"
            + (f"; its '{nested[0]}' entry looks like one (a training checkpoint's layout)." if nested else "."),
            hint="Save the model's own state dict: torch.save(model.state_dict(), path).",
        )
    return dict(state)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict in the file at ``path``, loaded with ``torch.load(weights_only=True)`` (no code runs)."""
    info = check_regular_file(path)
    return _load_state_dict(path, info.st_mtime_ns, info.st_size)


def listed(names: list[str], most: int = 4) -> str:
    """``a, b, c`` or ``a, b, c, d and 5 more``."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def load_matching(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool, path: str, exclude: str = "") -> int:
    """Copy ``state``'s tensors into ``model`` (parameters and buffers, by state_dict name); returns how many.

    ``strict``: the file's names and the model's must be the same. Otherwise the names both have
    are loaded and the model's others keep their draw. Shapes and dtypes must match either way.
    Names matching the ``fnmatch`` pattern ``exclude`` are left out on both sides: they keep their draw.
    """
    if exclude:
        kept = {key: value for key, value in state.items() if not fnmatch.fnmatch(key, exclude)}
        if not kept:
            raise InitbenchError(f"Checkpoint '{path}': exclude='{exclude}' leaves none of the file's {len(state)} tensors to load.", hint="Exclude only the tensors to draw afresh, for example head.*.")
        state = kept
    own = {key: value for key, value in own_state_dict(model).items() if not (exclude and fnmatch.fnmatch(key, exclude))}
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if strict and (missing or unexpected):
        parts = [f"{len(missing)} of the model's tensors are not in the file ({listed(missing)})"] if missing else []
        parts += [f"{len(unexpected)} of the file's are not in the model ({listed(unexpected)})"] if unexpected else []
        raise InitbenchError(
            f"Checkpoint '{path}' does not match the model: {'; '.join(parts)}.",
            hint="Save the file from a model of the same architecture, or use checkpoint:strict=false to load the tensors that match and draw the rest with the fallback scheme.",
        )
    matched = [key for key in own if key in state]
    if not matched:
        raise InitbenchError(f"Checkpoint '{path}': none of its {len(state)} tensors ({listed(list(state))}) is in the model.", hint="Save the file from a model of the same architecture.")
    shapes = [f"{key} is {list(state[key].shape)} in the file and {list(own[key].shape)} in the model" for key in matched if state[key].shape != own[key].shape]
    if shapes:
        raise InitbenchError(f"Checkpoint '{path}': tensor shapes differ: {listed(shapes, 3)}.", hint="Save the file from a model of the same architecture and sizes.")
    dtypes = [f"{key} is {state[key].dtype} in the file and {own[key].dtype} in the model" for key in matched if state[key].dtype != own[key].dtype]
    if dtypes:
        raise InitbenchError(f"Checkpoint '{path}': tensor dtypes differ: {listed(dtypes, 3)}.", hint="Set the run's dtype (float32 or float64) to the one the file was saved in.")
    with torch.no_grad():
        for key in matched:
            own[key].copy_(state[key])
    return len(matched)


@SCHEMES.register("checkpoint", aliases=("pretrained",))
class Checkpoint(InitScheme):
    """Start from a saved state dict: the "pretrained" init.

    ``path`` is a file saved with ``torch.save(model.state_dict(), path)`` from a model of the same
    architecture (``train.save_models`` writes one per run). It is read with
    ``torch.load(weights_only=True)``, so a file can hold tensors but cannot run code. Every
    parameter is first drawn by ``fallback`` (the run's draw order is unchanged), then the file's
    tensors, buffers included (BatchNorm's running statistics), replace them. ``strict`` (the
    default) requires the file's names to be the model's; with ``strict: false`` the model's
    tensors that the file lacks keep the fallback's draw (and the file's others are ignored).
    ``exclude``, an ``fnmatch`` pattern of names (``head.*``), keeps those tensors on the fallback's
    draw, file or not: fine-tuning with a fresh classifier. summary.json records how many tensors
    came from the file. The file is read before a run claims its directory (:meth:`check_inputs`).

    Also known as ``pretrained``; what ``model.load_state_dict(torch.load(path, weights_only=True))``
    does after a model is built.

    Args:
        path: the state dict's file.
        strict: whether the file's names must be exactly the model's (default true).
        fallback: the scheme that draws every tensor first (default ``default``).
        exclude: an ``fnmatch`` pattern of names that keep the fallback's draw (``head.*``).

    Examples:
        >>> Checkpoint(path="run/models/he-seed0.pt", exclude="head.*").spec()
        'checkpoint:path=run/models/he-seed0.pt,exclude=head.*'
    """

    formula = "W = W_file;  W ~ fallback where the file lacks it (strict: false) or its name matches exclude"
    needs_model = True
    fills_bias = False
    no_bias_reason = "loads a whole model's tensors"
    path: str = ""
    strict: bool = True
    fallback: str = "default"
    exclude: str = ""
    _fallback: InitScheme = PrivateAttr()
    _loaded: dict[str, int] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object) -> None:
        if not self.path:
            raise InitbenchError("init scheme checkpoint needs the file to start from: checkpoint:path=FILE.", hint="FILE holds a state dict, torch.save(model.state_dict(), FILE), or one train.save_models wrote.")
        self._fallback = inner_scheme(self.fallback, "checkpoint: fallback scheme")
        # The file is read by check_inputs before a run, not here: a config (a shipped one, or a run
        # directory's config.yaml that `initbench report` rereads) stays valid without it.

    def resolve(self, activation: Activation) -> InitScheme:
        return type(self)(**{**self.model_dump(), "fallback": self._fallback.resolve(activation).spec()})

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        self._fallback.sample_(tensor, context, generator)

    def check_inputs(self) -> None:
        read_state_dict(self.path)  # a missing, unsafe or malformed file is refused before the run

    def finish_model(self, model: nn.Module) -> None:
        self._loaded["tensors_from_file"] = load_matching(model, read_state_dict(self.path), self.strict, self.path, self.exclude)
        self._loaded["model_tensors"] = len(own_state_dict(model))

    def notes(self) -> dict[str, Any]:
        return {"checkpoint": {"path": self.path, "strict": self.strict, **self._loaded}} if self._loaded else {}

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None  # trained weights: no i.i.d. variance
