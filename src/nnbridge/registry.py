"""A small decorator registry: one per conversion direction.

Registering the same key twice raises, so two converters can never silently compete for one op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable[..., object])


class DuplicateRegistrationError(RuntimeError):
    pass


@dataclass
class Entry(Generic[F]):
    key: str
    func: F
    notes: str = ""


@dataclass
class Registry(Generic[F]):
    """Maps a key (a Caffe layer type, an ONNX ``domain::op_type``...) to a converter function."""

    name: str
    _entries: dict[str, Entry[F]] = field(default_factory=dict)

    def register(self, *keys: str, notes: str = "") -> Callable[[F], F]:
        if not keys:
            raise ValueError(f"{self.name}: register() needs at least one key")

        def decorator(func: F) -> F:
            for key in keys:
                if key in self._entries:
                    other = self._entries[key].func
                    raise DuplicateRegistrationError(
                        f"{self.name}: {key!r} is already registered by "
                        f"{other.__module__}.{other.__qualname__}"
                    )
                self._entries[key] = Entry(key, func, notes)
            return func

        return decorator

    def get(self, key: str) -> F | None:
        entry = self._entries.get(key)
        return entry.func if entry else None

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Entry[F]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.key))

    def keys(self) -> list[str]:
        return sorted(self._entries)
