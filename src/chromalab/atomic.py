"""Atomic file writes: a temporary file in the target's folder, then one rename.

A reader (or a crash) never sees a half-written output, and a failed write leaves whatever
was there before. Every writer of user-visible files (images, videos, reports, manifests)
goes through here so they all get the same permissions and clean-up.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@functools.lru_cache(maxsize=1)
def new_file_mode() -> int:
    """The permissions a plain ``open()`` would give (0666 less the umask).

    mkstemp creates files owner-only (0600), which would hide results from the user's group
    and from web servers. Read once per process: reading the umask means setting it briefly.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write to it, and on success it replaces ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=".chromalab-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, new_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_target(path) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")
    return Path(path)
