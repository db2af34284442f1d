"""The one exception type for mistakes a user can fix.

Library code raises :class:`InitbenchError` where the problem is known, with a message that says
what is wrong and what to do instead. Only the CLI layer catches it: it prints the message and
exits with code 2. Anything else that escapes is a bug or a runtime failure (exit code 1).
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

#: Shows a user's value in an error within a few lines, however large or aliased it is: a YAML
#: alias bomb is one small object referenced billions of times, and a full repr would expand it.
_short = reprlib.Repr()
_short.maxlevel, _short.maxlist, _short.maxdict, _short.maxstring, _short.maxother = 2, 4, 4, 60, 60


def shown_value(value: Any) -> str:
    """``repr(value)``, cut to at most a few nesting levels, items and characters."""
    return _short.repr(value)


class InitbenchError(Exception):
    """A user error: a bad config, an unknown name, an impossible request.

    Args:
        message: what is wrong, naming the offending value.
        hint: optional advice on how to fix it (valid choices, the nearest name, ...).
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n{self.hint}"


def from_validation_error(
    error: Any, context: str, valid_keys: Callable[[tuple[Any, ...]], list[str]], names: Mapping[str, str] | None = None
) -> InitbenchError:
    """Turn a pydantic ``ValidationError`` into one user error, one bullet per field.

    Args:
        error: the pydantic ``ValidationError``.
        context: where the values came from, e.g. "config configs/a.yaml" or "scheme 'normal'".
        valid_keys: given the location of an unknown key's parent, the keys valid there; used to
            suggest the nearest one ("Did you mean 'depth'?").
        names: what the user called a dotted key, where not the key itself: a command-line
            option that set it (``{"model.depth": "--depth"}``).
    """
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        where = ".".join(str(part) for part in location) or "(top level)"
        where = (names or {}).get(where, where)
        if item["type"] == "extra_forbidden":
            choices = valid_keys(location[:-1])
            matches = difflib.get_close_matches(str(location[-1]), choices, n=1)
            suggestion = f" Did you mean '{matches[0]}'?" if matches else ""
            lines.append(f"  - {where}: unknown key.{suggestion} Valid keys here: {', '.join(choices)}.")
        else:
            value = item.get("input")
            shown = "" if isinstance(value, dict) else f" (got {shown_value(value)})"
            lines.append(f"  - {where}: {item['msg']}{shown}")
    return InitbenchError(f"Invalid {context}:\n" + "\n".join(lines))
