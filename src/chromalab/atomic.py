"""Atomic file writes: a temporary file in the target's folder, then one rename.

A reader (or a crash) never sees a half-written output, and a failed write leaves whatever
was there before. Every writer of user-visible files (images, videos, reports, manifests)
goes through here so they all get the same permissions and clean-up.

``replace=False`` publishes with a hard link instead of a rename: the kernel refuses it if the
name was taken meanwhile, so a file the user put there while the work ran (after the
command's own up-front check) is never replaced either.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chromalab.errors import ChromalabError


class OutputExistsError(ChromalabError):
    """An output path already holds a file and replacing it was not asked for."""

    def __init__(self, path: Path, hint: str = "use --overwrite to replace it") -> None:
        super().__init__(f"{path}: exists ({hint})")
        self.path = path


@functools.lru_cache(maxsize=1)
def new_file_mode() -> int:
    """The permissions a plain ``open()`` would give (0666 less the umask).

    mkstemp creates files owner-only (0600), which would hide results from the user's group
    and from web servers. Read once per process: reading the umask means setting it briefly.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _publish_new(temporary: str, path: Path) -> None:
    """Give ``temporary`` the name ``path`` only if that name is free (atomically)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as error:
        # Filesystems without hard links (FAT, some network mounts): check, then rename.
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise OutputExistsError(path) from None
        os.replace(temporary, path)
        return
    os.unlink(temporary)


@contextmanager
def atomic_target(path: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write to it, and on success it becomes ``path``.

    ``replace=False``: raise OutputExistsError rather than replace an existing ``path``. On
    any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=".chromalab-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, new_file_mode())
        if replace:
            os.replace(temporary, path)
        else:
            _publish_new(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, replace: bool = True) -> Path:
    with atomic_target(path, replace=replace) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")
    return Path(path)


def first_free_folder(base: Path) -> Path:
    """``base`` if it is new or an empty folder, else the first new or empty ``base-2``, ``base-3``, ...

    How a run gets a folder of its own: an earlier run's outputs are never replaced, and a file
    the user keeps under that name is never written into.
    """
    base = Path(base)
    candidate, number = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def check_outputs_free(out_dir: Path, names: Sequence[str], overwrite: bool) -> None:
    """Fail before any work is done if an output would replace an existing file (or folder).

    A folder where a file should go is refused even with ``overwrite``: it is never replaced.
    """
    if os.path.lexists(out_dir) and not Path(out_dir).is_dir():
        raise ChromalabError(f"{out_dir}: exists and is not a folder (--out names the report folder)")
    folders = [name for name in names if (Path(out_dir) / name).is_dir()]
    if folders:
        raise ChromalabError(f"{out_dir}: {', '.join(folders)} {'is a folder' if len(folders) == 1 else 'are folders'}"
                             "; give another --out")
    if overwrite:
        return
    taken = [name for name in names if os.path.lexists(Path(out_dir) / name)]
    if taken:
        raise ChromalabError(f"{out_dir}: already holds {', '.join(taken)} (use --overwrite or another --out)")
