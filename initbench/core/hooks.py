"""Forward hooks that always remove themselves: the base of every hook set initbench puts on a model."""

from __future__ import annotations

from typing import Any, TypeVar

H = TypeVar("H", bound="HookSet")


class HookSet:
    """Hooks registered on entry to a ``with`` block and removed on exit, also when registering
    them or the model raises: a model handed back to its user never keeps one of ours.

    Subclasses register their hooks in :meth:`register` and keep each handle with :meth:`keep`.
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def register(self) -> None:
        """Put the hooks on the model (each handle through :meth:`keep`)."""
        raise NotImplementedError

    def keep(self, handle: Any) -> None:
        self._handles.append(handle)

    def __enter__(self: H) -> H:
        try:
            self.register()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
