"""Colorizing files: inputs (files, folders, globs) -> outputs that mirror them, safely.

Bad inputs are reported one line each and skipped; the batch goes on. Outputs are written
atomically, never over an input and never over an existing file without ``overwrite``.
"""

from __future__ import annotations

import glob
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from PIL import Image

from chromalab.data.folder import list_images
from chromalab.data.images import (
    FORMAT_BY_EXTENSION,
    BadImageError,
    check_writable_folder,
    open_rgb,
    resolved,
    save_image_atomic,
)
from chromalab.inference.colorizer import AbTransform, Colorizer

log = logging.getLogger(__name__)


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class ColorizeReport:
    written: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def expand_inputs(inputs: Sequence[str | Path]) -> tuple[list[tuple[Path, Path]], dict[Path, str]]:
    """Each input -> (file, path relative to where the output tree starts); plus missing ones.

    A folder contributes its images recursively, relative to the folder; a glob or a file
    contributes files by name.
    """
    found: list[tuple[Path, Path]] = []
    missing: dict[Path, str] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            # Bad entries (broken links, unreadable files) are listed too: each is then named.
            files = list_images(path)
            if not files:
                missing[path] = "folder contains no images"
            found.extend((f, f.relative_to(path)) for f in files)
        elif os.path.lexists(path):
            found.append((path, Path(path.name)))
        elif any(ch in str(item) for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not matches:
                missing[path] = "pattern matches no files"
            found.extend((m, Path(m.name)) for m in matches)
        else:
            missing[path] = "no such file or folder"
    return found, missing


def plan_jobs(
    inputs: Sequence[str | Path], out_dir: Path, image_format: str | None = None, suffix: str = ""
) -> tuple[list[Job], dict[Path, str]]:
    found, failed = expand_inputs(inputs)
    extensions = []
    for source, _ in found:
        extension = f".{image_format.lower().lstrip('.')}" if image_format else source.suffix.lower()
        extensions.append(extension if extension in FORMAT_BY_EXTENSION else ".png")  # GIF -> PNG
    # Two inputs that land on one output (x.gif and x.png -> x.png; x.jpg and x.png with
    # --format png): the one whose extension is kept gets the plain name, the other keeps its
    # old extension in its name (x-gif.png), as prepare does.
    order = sorted(range(len(found)), key=lambda i: (found[i][0].suffix.lower() != extensions[i], i))
    targets: dict[int, Path] = {}
    taken: set[str] = set()
    for i in order:
        source, relative = found[i]
        folder, stem, tag = out_dir / relative.parent, relative.stem, source.suffix.lstrip(".").lower() or "file"
        target = folder / f"{stem}{suffix}{extensions[i]}"
        number = 1
        while str(target).lower() in taken:
            number += 1
            target = folder / f"{stem}-{tag if number == 2 else f'{tag}-{number - 1}'}{suffix}{extensions[i]}"
        taken.add(str(target).lower())
        targets[i] = target
    return [Job(source, targets[i]) for i, (source, _) in enumerate(found)], failed


def _batches(items: Sequence[Job], size: int) -> Iterator[Sequence[Job]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load(job: Job) -> Image.Image | BadImageError:
    try:
        # A gray photo stays one channel: the colorizer reads only its lightness.
        return open_rgb(job.source, keep_gray=True)
    except BadImageError as error:
        return error


def _load_all(batch: Sequence[Job]) -> list[Image.Image | BadImageError]:
    return [_load(job) for job in batch]


def colorize_files(
    colorizer: Colorizer,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    size: int | None = None,
    batch_size: int = 8,
    overwrite: bool = False,
    image_format: str | None = None,
    ab_transform: AbTransform | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    **options: Any,
) -> ColorizeReport:
    """Colorize every input photo into ``out_dir``; returns what was written and what failed."""
    out_dir = Path(out_dir)
    report = ColorizeReport()
    on_error = on_error or (lambda message: log.error(message))
    jobs, missing = plan_jobs(inputs, out_dir, image_format)
    for path, reason in missing.items():
        report.failed[path] = reason
        on_error(f"{path}: {reason}")
    if not jobs:
        return report
    try:
        check_writable_folder(out_dir)
    except BadImageError as error:
        for job in jobs:
            report.failed[job.source] = error.reason
        on_error(str(error))
        return report
    protected = frozenset(resolved(job.source) for job in jobs)
    pending = []
    for job in jobs:  # decide up front, so nothing is computed for a file we may not write
        if resolved(job.target) in protected:
            reason = "output would overwrite an input file"
        elif job.target.exists() and not overwrite:
            reason = f"output {job.target} exists (use --overwrite to replace it)"
        else:
            pending.append(job)
            continue
        report.failed[job.source] = reason
        on_error(f"{job.source}: {reason}")
    # Decoding the next batch (in a thread) overlaps with the network on the current one.
    batches = list(_batches(pending, batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(_load_all, batches[0]) if batches else None
        for number, batch in enumerate(batches):
            loaded = upcoming.result()
            if number + 1 < len(batches):
                upcoming = pool.submit(_load_all, batches[number + 1])
            good = []
            for job, image in zip(batch, loaded):
                if isinstance(image, BadImageError):
                    report.failed[job.source] = image.reason
                    on_error(str(image))
                else:
                    good.append((job, image))
            outputs = colorizer.colorize_images(
                [image for _, image in good], size=size, ab_transform=ab_transform, **options
            )
            for (job, _), result in zip(good, outputs):
                try:
                    save_image_atomic(result, job.target, overwrite=overwrite, protected=protected)
                    report.written.append(job.target)
                except BadImageError as error:
                    report.failed[job.source] = error.reason
                    on_error(f"{job.source}: {error.reason}")
            if on_progress:
                on_progress(len(batch))
    return report
