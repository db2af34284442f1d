"""One generic registry for everything initbench looks up by name.

Schemes, activations, datasets and experiments are all registered here. An entry is a class
(usually a pydantic model whose fields are the entry's options); :func:`parse_spec` turns the
command-line form ``NAME:key=value,key=value`` into a ``(name, options)`` pair. Unknown names are
an :class:`~initbench.core.errors.InitbenchError` that lists the valid names and suggests the nearest.

Example:
    >>> SHAPES = Registry[type]("shape")
    >>> @SHAPES.register("square", aliases=("box",))
    ... class Square: ...
    >>> SHAPES.get("box") is Square
    True
    >>> SHAPES.get("sqare")
    Traceback (most recent call last):
    ...
    initbench.core.errors.InitbenchError: Unknown shape 'sqare'. Did you mean 'square'?
    Valid shapes: box, square.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from initbench.core.errors import InitbenchError, from_validation_error
from initbench.core.yamlinput import load_yaml

T = TypeVar("T")


def nearest(name: str, choices: list[str]) -> str | None:
    """The closest of ``choices`` to ``name`` (difflib ratio ≥ 0.6), or None."""
    matches = difflib.get_close_matches(name, choices, n=1)
    return matches[0] if matches else None


def unknown_name_error(kind: str, name: str, choices: list[str]) -> InitbenchError:
    """The error for a name that is not one of ``choices``: lists them and suggests the nearest."""
    suggestion = nearest(name, choices)
    did_you_mean = f" Did you mean '{suggestion}'?" if suggestion else ""
    return InitbenchError(
        f"Unknown {kind} '{name}'.{did_you_mean}",
        hint=f"Valid {kind}s: {', '.join(sorted(choices))}.",
    )


class Registry(Generic[T]):
    """Named entries of one kind, with aliases.

    Args:
        kind: what the entries are, in the singular ("scheme", "activation"); used in messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator that registers an entry under ``name`` (and each alias)."""

        def decorate(entry: T) -> T:
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._entries[name] = entry
            if isinstance(entry, type) and issubclass(entry, Component):
                entry.registry_name = name
            for alias in aliases:
                self._aliases[alias] = name
            return entry

        return decorate

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (resolving aliases); raises for unknown names."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise unknown_name_error(self.kind, name, self.names(include_aliases=True))

    def get(self, name: str) -> T:
        """The entry registered under ``name`` or one of its aliases."""
        return self._entries[self.canonical(name)]

    def names(self, pattern: str = "*", include_aliases: bool = False) -> list[str]:
        """Registered names matching the ``fnmatch`` pattern, in registration order."""
        keys = list(self._entries) + (list(self._aliases) if include_aliases else [])
        return [key for key in keys if fnmatch.fnmatch(key, pattern)]

    def aliases_of(self, name: str) -> list[str]:
        """The aliases that point at ``name``."""
        return [alias for alias, target in self._aliases.items() if target == name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())


def parse_scalar(text: str, source: str) -> Any:
    """A command-line value parsed as YAML: ``3`` → 3, ``0.01`` → 0.01, ``1e-3`` → 0.001, ``auto`` → 'auto'.

    ``source`` names the value in errors (``override model.depth``); see :func:`~initbench.core.yamlinput.load_yaml`.
    """
    return load_yaml(text, source) if text.strip() else ""


def parse_spec(spec: str, kind: str) -> tuple[str, dict[str, Any]]:
    """Split ``NAME`` or ``NAME:key=value,key=value`` into the name and its options.

    Values are YAML scalars (see :func:`parse_scalar`). A malformed option is a user error.

    Example:
        >>> parse_spec("normal:std=0.01,mean=0", "scheme")
        ('normal', {'std': 0.01, 'mean': 0})
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise InitbenchError(f"Empty {kind} name in '{spec}'.", hint=f"Write a {kind} as NAME or NAME:key=value,key=value.")
    return name, parse_options(rest, spec, kind, name)


def parse_options(rest: str, spec: str, kind: str, name: str) -> dict[str, Any]:
    """The options ``key=value,key=value`` that follow ``name`` in ``spec`` (see :func:`parse_spec`)."""
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InitbenchError(
                f"Cannot read option '{item}' of {kind} '{spec}'.",
                hint=f"Write options as key=value, for example {name}:gain=auto.",
            )
        if key in options:
            raise InitbenchError(f"{kind} '{spec}' gives option '{key}' twice.", hint="Give each option once.")
        value = value.strip()
        # A bare leading * is YAML's alias, which no option means: it is a glob (gpt2's projections=*.c_proj).
        options[key] = value if value.startswith("*") else parse_scalar(value, f"option '{key}' of {kind} '{spec}'")
    return options


def format_value(value: Any) -> str:
    """An option's value as a spec writes it: quoted where YAML would read the bare text as
    something else (``'*.c_proj'`` is an alias without the quotes, ``'3'`` a number)."""
    text = str(value)
    if isinstance(value, str):
        try:
            reads_back = parse_scalar(text, "a value") == value
        except InitbenchError:
            reads_back = False
        if not reads_back:
            return "'" + text.replace("'", "''") + "'"
    return text


def format_spec(name: str, options: dict[str, Any]) -> str:
    """The inverse of :func:`parse_spec`: ``normal``, ``{'std': 0.01}`` → ``normal:std=0.01``.

    Example:
        >>> format_spec("gpt2", {"projections": "*.c_proj", "std": 0.02})
        "gpt2:projections='*.c_proj',std=0.02"
    """
    if not options:
        return name
    return name + ":" + ",".join(f"{key}={format_value(value)}" for key, value in options.items())


#: Strict (no ``true`` for 1, no ``"3"`` for 3) and finite (no NaN or infinity): how every
#: component's options and every section of the config are validated.
STRICT = ConfigDict(strict=True, allow_inf_nan=False)


class Component(BaseModel):
    """Base of every registered entry that has options: the pydantic fields *are* the options.

    Subclasses set ``formula`` (shown by ``initbench list``) and document themselves in their
    docstring, whose first line is the one-line description.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, **STRICT)

    registry_name: ClassVar[str] = ""
    formula: ClassVar[str] = ""

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0]

    @classmethod
    def option_names(cls) -> list[str]:
        return list(cls.model_fields)

    def options(self) -> dict[str, Any]:
        """The options that differ from their defaults, in declaration order."""
        return {key: value for key, value in self.model_dump().items() if value != type(self).model_fields[key].default}

    def spec(self) -> str:
        """``NAME:key=value`` for this entry, listing the non-default options."""
        return format_spec(self.registry_name, self.options())


C = TypeVar("C", bound=Component)


def build(registry: Registry[type[C]], name: str, options: dict[str, Any]) -> C:
    """Instantiate the entry ``name`` with ``options``, turning validation failures into user errors."""
    entry = registry.get(name)
    try:
        return entry(**options)
    except ValidationError as error:
        raise from_validation_error(error, f"options for {registry.kind} '{name}'", lambda _loc: entry.option_names() or ["(none)"]) from None


def build_from_spec(registry: Registry[type[C]], spec: str) -> C:
    """Instantiate an entry from its command-line form ``NAME:key=value,...``."""
    name, options = parse_spec(spec, registry.kind)
    return build(registry, name, options)
