"""The one shape of every extension table (formats, architectures, metrics): a name -> entry mapping
that refuses a second entry of a name and answers an unknown name with one line naming the known."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class Table(dict[str, T], Generic[T]):
    """Entries by name; ``kind`` names them in messages, ``error`` is what an unknown name raises."""

    def __init__(self, kind: str, error: type[Exception]) -> None:
        super().__init__()
        self.kind, self.error = kind, error

    def register(self, entry: T) -> T:
        """Add ``entry``; a name is registered once (a second module claiming it is a bug)."""
        if entry.name in self:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self[entry.name] = entry
        return entry

    def resolve(self, name: str, prefix: str = "") -> T:
        """The entry called ``name``; ``error`` naming the known ones otherwise."""
        entry = self.get(name)
        if entry is None:
            raise self.error(f"{prefix}unknown {self.kind} {name!r} (known: {', '.join(sorted(self))})")
        return entry
