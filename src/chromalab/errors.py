"""Errors that reach a user as one clear line (no traceback)."""

from __future__ import annotations


class ChromalabError(Exception):
    """A problem with the user's input or set-up, explained in one line."""


class BadImageError(ChromalabError):
    """An input file that is not a usable image; the message names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
