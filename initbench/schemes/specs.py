"""Scheme specs, and a user's own scheme named by import path (``init.scheme: mypkg.inits:my_init``).

A scheme is written ``NAME`` or ``NAME:key=value,...`` (a registered scheme), or, when the name
holds a ".", as an import path ``package.module:attribute``, with its options after a further
colon (``mypkg.inits:my_init:std=0.1``) or beside ``init.scheme`` as sibling keys in YAML. The
module is imported only when a config names it. The attribute is either

- an :class:`~initbench.schemes.base.InitScheme` subclass, used as it is: its pydantic fields are the
  options, validated as a built-in's are, and its ``spec()`` is the import path; or
- a function with the built-in schemes' signature, ``fn(tensor, context, generator, **options)``,
  that fills ``tensor`` in place from the ``torch.Generator``, told where the parameter sits by
  ``context`` (a :class:`~initbench.nets.architectures.ParamContext`); its return value is ignored. It
  runs as the registered ``plugin`` scheme, whose spec is the path and options, so the run
  directory's ``config.yaml`` reruns it.

A plugin reports no variance to the theory unless its class defines ``weight_variance``.

Example ``mypkg/inits.py``, used as ``init.scheme: "mypkg.inits:scaled_normal:std=2"``::

    def scaled_normal(tensor, context, generator, std=1.0):
        tensor.normal_(0.0, std / context.fan_in**0.5, generator=generator)
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field, PrivateAttr, ValidationError

from initbench.core.errors import InitbenchError, from_validation_error
from initbench.core.registry import build, format_spec, parse_options, parse_spec, unknown_name_error
from initbench.nets.architectures import import_factory
from initbench.schemes.base import SCHEMES, InitScheme

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext

WHAT = "scheme plugin"
EXAMPLE = "mypkg.inits:my_init"


def is_import_path(name: str) -> bool:
    """Whether a scheme name is an import path (``package.module:attribute``) rather than a registered name."""
    return "." in name


def parse_scheme_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of ``NAME:key=value,...`` or ``package.module:attribute:key=value,...``."""
    head, _, rest = spec.partition(":")
    if not is_import_path(head):
        if head.strip() and head.strip() not in SCHEMES:  # an unknown name, not options it cannot read ('foo:bar', 'mymodule:fn')
            error = unknown_name_error("scheme", head.strip(), SCHEMES.names(include_aliases=True))
            raise InitbenchError(error.message, hint=f"{error.hint} A scheme of your own is named by its import path with a dot, package.module:function.")
        return parse_spec(spec, "scheme")
    attribute, _, options = rest.partition(":")
    path = f"{head.strip()}:{attribute.strip()}"
    return path, parse_options(options, spec, "scheme", path)


def build_scheme(name: str, options: dict[str, Any]) -> InitScheme:
    """The registered scheme ``name``, or the plugin at import path ``name``, with ``options``."""
    if not is_import_path(name):
        if name not in SCHEMES:
            error = unknown_name_error("scheme", name, SCHEMES.names(include_aliases=True))
            raise InitbenchError(error.message, hint=f"{error.hint} Or name your own by import path, package.module:function.")
        return build(SCHEMES, name, options)
    target = import_factory(name, WHAT, EXAMPLE)
    if not isinstance(target, type):
        return PluginFunction(function=name, kwargs=options)
    if not issubclass(target, InitScheme):
        raise InitbenchError(
            f"Scheme plugin '{name}' is a class but not an initbench.schemes.base.InitScheme.",
            hint="Point at an InitScheme subclass, or at a function fn(tensor, context, generator, **options).",
        )
    target.registry_name = name  # its spec() is then the import path, which reruns it
    target.trial_draw = False  # a user's class may expect its own layers, not the config check's stand-in
    try:
        return target(**options)
    except ValidationError as error:
        raise from_validation_error(error, f"options for scheme plugin '{name}'", lambda _loc: target.option_names() or ["(none)"]) from None


def scheme_from_spec(spec: str) -> InitScheme:
    """The scheme written ``spec`` (see :func:`parse_scheme_spec`)."""
    return build_scheme(*parse_scheme_spec(spec))


@SCHEMES.register("plugin")
class PluginFunction(InitScheme):
    """A user's function as a scheme: write its import path, ``init.scheme: package.module:function``.

    The function is called as ``function(tensor, context, generator, **kwargs)`` and fills
    ``tensor`` in place; ``kwargs`` are the options written after the path
    (``mypkg.inits:my_init:std=0.1``) or as sibling keys of ``init.scheme``. See
    :mod:`initbench.schemes.specs`.
    """

    formula = "function(tensor, context, generator, **options) fills W in place"
    trial_draw = False
    function: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    _function: Any = PrivateAttr()

    def model_post_init(self, context: object) -> None:
        function = import_factory(self.function, WHAT, EXAMPLE)
        try:
            inspect.signature(function).bind(None, None, None, **self.kwargs)
        except TypeError as error:
            raise InitbenchError(
                f"Scheme plugin '{self.function}' cannot take options {sorted(self.kwargs)}: {error}.",
                hint="A plugin function's signature is fn(tensor, context, generator, **options).",
            ) from None
        except ValueError:  # no signature to read (a builtin): the first call will tell
            pass
        self._function = function

    def spec(self) -> str:
        return format_spec(self.function, self.kwargs)

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        place = f"{context.module_path or 'the model'} ({context.module_type}) {context.role} of shape {list(context.shape)}"
        # NaN first: a function that forgets an entry leaves NaN, not whatever memory held (a new
        # number each run), and is caught below.
        tensor.fill_(math.nan)
        try:
            returned = self._function(tensor, context, generator, **self.kwargs)
        except InitbenchError:
            raise
        except (Exception, SystemExit) as error:  # the user's code: one line naming it and the parameter, exit 2
            raise InitbenchError(f"Scheme plugin '{self.function}' failed on {place}: {type(error).__name__}: {error}") from None
        if returned is not None:
            raise InitbenchError(
                f"Scheme plugin '{self.function}' returned a {type(returned).__name__} for {place}.",
                hint="A scheme fills the tensor it is given in place (tensor.normal_(...), tensor.copy_(...)) and returns None.",
            )
        unset = int(torch.isnan(tensor).sum())
        if unset:
            raise InitbenchError(f"Scheme plugin '{self.function}' left {unset} of {tensor.numel()} entries of {place} unset (NaN).", hint="Fill every entry of the tensor in place.")
