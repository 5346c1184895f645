"""Finding photos in a folder tree, checking them once, and splitting them stably.

Checking (can it be decoded? is it grayscale?) touches every file, so its result is cached
per folder in the user cache directory, keyed by each file's size and modification time:
a second run over 10,000 photos reads one JSON file instead of decoding 10,000 images.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import track

from chromalab.atomic import write_text_atomic
from chromalab.data.images import BadImageError, is_image_path, is_monochrome, open_rgb


def cache_dir() -> Path:
    root = os.environ.get("CHROMALAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "chromalab"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every entry named like an image below ``root`` (recursive, sorted, hidden files skipped).

    Linked folders are followed, each folder once (a link back up the tree would otherwise list
    the same photos again and again). Entries that only look like image files are listed too
    (a broken or looping link, an unreadable file), so the command reading them names each
    with its reason instead of passing over it; a folder named ``x.jpg`` is a folder.
    """
    root = Path(root)
    if not root.is_dir():
        return [root] if is_image_path(root) and os.path.lexists(root) else []
    files: list[Path] = []
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            info = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in visited:  # reached again through a link
            dirnames[:] = []
            continue
        visited.add((info.st_dev, info.st_ino))
        dirnames.sort()  # the walk's order, and so which path of a twice-linked folder is kept
        files.extend(Path(dirpath) / name for name in filenames if is_image_path(Path(name)))
    return sorted(files)


def in_validation_split(relative_path: str, fraction: float, seed: int = 0) -> bool:
    """Stable split: a file's side depends only on its relative path and the seed.

    Adding or removing other files never moves a photo from one side to the other.
    """
    if fraction <= 0:
        return False
    digest = hashlib.sha1(f"{seed}:{relative_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass
class FolderIndex:
    """The usable color photos of a folder, and what was left out and why."""

    root: Path
    files: list[Path] = field(default_factory=list)
    grayscale: list[Path] = field(default_factory=list)
    unreadable: dict[Path, str] = field(default_factory=dict)

    def split(self, val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
        train, val = [], []
        for path in self.files:
            relative = path.relative_to(self.root).as_posix() if path != self.root else path.name
            (val if in_validation_split(relative, val_fraction, seed) else train).append(path)
        return train, val

    def summary(self) -> str:
        return (
            f"{len(self.files)} color photos in {self.root}; skipped "
            f"{len(self.grayscale)} grayscale and {len(self.unreadable)} unreadable"
        )


def _check_file(path: str) -> tuple[str, str]:
    """'color', 'gray' or 'bad:<reason>' for one file (runs in a worker process)."""
    try:
        image = open_rgb(path, draft_size=64)
    except BadImageError as error:
        return path, f"bad:{error.reason}"
    # Toned prints (sepia, cyanotype) count as gray too: they carry no color to learn from.
    return path, "gray" if is_monochrome(image) else "color"


def _signature(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:  # a broken link, say: checked (and reported) again each time
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def index_folder(
    root: str | os.PathLike[str],
    workers: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FolderIndex:
    """Decode-check every photo below ``root`` once (in parallel), reusing earlier checks."""
    root = Path(root).resolve()
    if not root.exists():
        raise BadImageError(root, "no such file or folder")
    paths = list_images(root)
    cache_file = cache_dir() / f"index-v2-{hashlib.sha1(str(root).encode()).hexdigest()[:16]}.json"
    cached: dict[str, list[str]] = {}
    if use_cache and cache_file.exists():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cached = {}
    verdicts: dict[str, str] = {}
    todo: list[str] = []
    for path in paths:
        key = str(path)
        entry = cached.get(key)
        if entry and entry[0] == _signature(path):
            verdicts[key] = entry[1]
        else:
            todo.append(key)
    if todo:
        workers = workers or min(8, os.cpu_count() or 1)
        if workers > 1 and len(todo) > 64:
            with ProcessPoolExecutor(workers) as pool:
                results = pool.map(_check_file, todo, chunksize=32)
                for key, verdict in track(
                    results, total=len(todo), description="Checking photos", disable=not progress
                ):
                    verdicts[key] = verdict
        else:
            for key in todo:
                verdicts[key] = _check_file(key)[1]
        if use_cache:
            payload = {str(p): [_signature(p), verdicts[str(p)]] for p in paths}
            # A temporary file of its own: DDP ranks (or two runs) index the same folder at once.
            write_text_atomic(cache_file, json.dumps(payload))
    index = FolderIndex(root=root)
    for path in paths:
        verdict = verdicts[str(path)]
        if verdict == "color":
            index.files.append(path)
        elif verdict == "gray":
            index.grayscale.append(path)
        else:
            index.unreadable[path] = verdict.removeprefix("bad:")
    return index
