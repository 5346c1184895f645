"""One registry for every name a user chooses: architectures, training objectives,
discriminators, GAN losses and pixel losses.

Each kind of choice is a ``Registry``: entries registered under a name with a one-line
description, looked up by name. Whether a name arrives from YAML (``model.name``,
``gan.discriminator``, ``gan.loss``, ``loss.pixel``), a flag or Python code, an unknown one
fails the same way, in one line that names the kind, suggests the closest name and lists the
choices::

    unknown GAN loss 'lsgn'; did you mean 'lsgan'? choose from: hinge, lsgan, vanilla, wgan-gp

This module imports nothing heavy (no torch), so configuration checks can use its messages.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Iterator, Mapping, TypeVar

from chromalab.errors import ChromalabError

T = TypeVar("T")


class UnknownNameError(ChromalabError, ValueError):
    """A name no registry entry has. Also a ValueError: code that looked names up before
    the registries existed caught ValueError."""

    def __init__(self, kind: str, name: object, choices: Iterable[str]) -> None:
        super().__init__(unknown_name_message(kind, name, choices))
        self.kind = kind
        self.name = name


def unknown_name_message(kind: str, name: object, choices: Iterable[str]) -> str:
    """``unknown <kind> 'x'; [did you mean 'y'? ]choose from: a, b, c`` (choices sorted)."""
    options = sorted(choices)
    close = difflib.get_close_matches(str(name).lower(), options, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {kind} {str(name)!r}; {hint}choose from: {', '.join(options)}"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered choice: the object, what it is in a line, and facts about it (``info``)."""

    name: str
    value: T
    description: str
    info: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` is how messages call them: "discriminator").

    ``load`` imports the modules that register entries; it runs once, on the first lookup,
    so importing a registry stays cheap and model families register themselves on import.
    Lookups ignore case; ``aliases`` are extra names for an entry that ``names()`` omits.
    """

    def __init__(self, kind: str, load: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._load = load
        self._loaded = load is None
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    # --- registering ---------------------------------------------------------------------
    def add(self, name: str, value: T, description: str, aliases: Iterable[str] = (), **info: Any) -> T:
        """Register ``value`` under ``name``; returns it unchanged."""
        if not description or not description.strip():
            raise ValueError(f"{self.kind} {name!r} needs a description")
        key = name.lower()
        for taken in (key, *(a.lower() for a in aliases)):
            if taken in self._entries or taken in self._aliases:
                raise ValueError(f"{self.kind} {taken!r} is registered twice")
        self._entries[key] = Entry(name, value, description, dict(info))
        for alias in aliases:
            self._aliases[alias.lower()] = key
        return value

    def register(self, name: str, description: str, aliases: Iterable[str] = (),
                 **info: Any) -> Callable[[T], T]:
        """Decorator form of ``add``: ``@registry.register("patch", "70x70 PatchGAN")``."""

        def decorator(value: T) -> T:
            return self.add(name, value, description, aliases, **info)

        return decorator

    # --- looking up ------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: the modules it imports register into this registry
            assert self._load is not None
            self._load()

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (an alias resolves to its entry); raises
        UnknownNameError with the one-line message otherwise."""
        self._ensure_loaded()
        key = str(name).lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries[key].name

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name).lower()]

    def get(self, name: str) -> T:
        return self.entry(name).value

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        key = str(name).lower()
        return key in self._entries or key in self._aliases

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (aliases left out)."""
        self._ensure_loaded()
        return tuple(entry.name for entry in self._entries.values())

    def descriptions(self) -> dict[str, str]:
        self._ensure_loaded()
        return {entry.name: entry.description for entry in self._entries.values()}

    def entries(self) -> list[Entry[T]]:
        self._ensure_loaded()
        return list(self._entries.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
