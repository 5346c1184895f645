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
from typing import Any, Callable, Iterator, Mapping, Sequence

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
from chromalab.inference.colorizer import AbTransform, Colorizer, with_points
from chromalab.inference.points import ColorPoint

log = logging.getLogger(__name__)

BATCH_PIXELS = 30_000_000  # a batch also ends at this many decoded pixels (memory: three batches)


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


def _load(job: Job) -> Image.Image | BadImageError:
    try:
        # A gray photo stays one channel: the colorizer reads only its lightness.
        return open_rgb(job.source, keep_gray=True)
    except BadImageError as error:
        return error


def _load_batch(jobs: Iterator[Job], size: int) -> list[tuple[Job, Image.Image | BadImageError]]:
    """The next ``size`` photos, or fewer once they hold BATCH_PIXELS: a batch of 24-MP scans
    is two, a batch of thumbnails is ``size``."""
    batch: list[tuple[Job, Image.Image | BadImageError]] = []
    pixels = 0
    for job in jobs:
        image = _load(job)
        batch.append((job, image))
        pixels += 0 if isinstance(image, BadImageError) else image.width * image.height
        if len(batch) >= size or pixels >= BATCH_PIXELS:
            break
    return batch


def chunked(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """Jobs in fixed chunks of ``size``: the unit a batch never crosses.

    A batch is a chunk, or part of one once its photos hold BATCH_PIXELS. Fixed chunks make the
    batches a function of the job list alone, so a distributed run that hands whole chunks to
    its workers (chromalab.inference.archive) forms the very batches this machine does, and the
    PyTorch backend, whose numbers may differ in the last bit between batch compositions, gives
    byte-identical outputs either way.
    """
    return [list(jobs[start:start + size]) for start in range(0, len(jobs), size)]


def _batches(chunks: Sequence[Sequence[Job]], size: int) -> Iterator[list[tuple[Job, Image.Image | BadImageError]]]:
    for chunk in chunks:
        left = iter(chunk)
        while batch := _load_batch(left, size):
            yield batch


def _merge_and_save(
    colorizer: Colorizer,
    good: Sequence[tuple[Job, Image.Image]],
    ab_small: Any,
    overwrite: bool,
    protected: frozenset[Path],
    points: Mapping[Path, Sequence[ColorPoint]],
    skip: frozenset[Path] = frozenset(),
    before_write: Callable[[Job], None] | None = None,
) -> list[tuple[Job, BadImageError | None]]:
    """Full-resolution photos from the network's small a*b* (corrected by the photo's color
    points, if it has any), written; each job's error or None. Jobs whose target is in ``skip``
    (written by an earlier run) were only part of the batch: they are not written again."""
    written: list[tuple[Job, BadImageError | None]] = []
    for (job, image), ab in zip(good, ab_small):
        if job.target in skip:
            continue
        try:
            if before_write is not None:
                before_write(job)
            ab = with_points(image, ab, points.get(job.source, ()))
            save_image_atomic(colorizer.merge(image, ab), job.target, overwrite=overwrite, protected=protected)
            written.append((job, None))
        except BadImageError as error:
            written.append((job, error))
    return written


def check_jobs(
    jobs: Sequence[Job],
    overwrite: bool,
    report: ColorizeReport,
    on_error: Callable[[str], None],
    own: frozenset[Path] = frozenset(),
) -> list[Job]:
    """The jobs that may be written, in order; the others are failed in ``report`` (an output
    over an input, or over an existing file without ``overwrite``). ``own``: targets this same
    job wrote in an earlier, interrupted run (its journal says so): kept, not a conflict."""
    protected = frozenset(resolved(job.source) for job in jobs)
    pending = []
    for job in jobs:  # decide up front, so nothing is computed for a file we may not write
        if resolved(job.target) in protected:
            reason = "output would overwrite an input file"
        elif job.target.exists() and not overwrite and job.target not in own:
            reason = f"output {job.target} exists (use --overwrite to replace it)"
        else:
            pending.append(job)
            continue
        report.failed[job.source] = reason
        on_error(f"{job.source}: {reason}")
    return pending


def fail_all_if_unwritable(out_dir: Path, jobs: Sequence[Job], failed: dict, on_error: Callable[[str], None],
                           key: Callable[[Any], Any] = lambda source: source) -> bool:
    """True when ``out_dir`` cannot be written: every job is marked failed with the reason
    (keyed by ``key(job.source)``) and the one-line reason goes to ``on_error`` once."""
    try:
        check_writable_folder(out_dir)
    except BadImageError as error:
        for job in jobs:
            failed[key(job.source)] = error.reason
        on_error(str(error))
        return True
    return False


def colorize_files(
    colorizer: Colorizer,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    size: int | None = None,
    batch_size: int = 32,
    overwrite: bool = False,
    image_format: str | None = None,
    ab_transform: AbTransform | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    points: Mapping[Path, Sequence[ColorPoint]] | None = None,
    **options: Any,
) -> ColorizeReport:
    """Colorize every input photo into ``out_dir``; returns what was written and what failed.

    ``points``: color points by photo path (chromalab.inference.points_files), already checked.
    """
    out_dir = Path(out_dir)
    report = ColorizeReport()
    on_error = on_error or (lambda message: log.error(message))
    jobs, missing = plan_jobs(inputs, out_dir, image_format)
    for path, reason in missing.items():
        report.failed[path] = reason
        on_error(f"{path}: {reason}")
    if not jobs:
        return report
    if fail_all_if_unwritable(out_dir, jobs, report.failed, on_error):
        return report
    protected = frozenset(resolved(job.source) for job in jobs)
    pending = check_jobs(jobs, overwrite, report, on_error)
    colorize_chunks(colorizer, chunked(pending, batch_size), report, size=size, batch_size=batch_size,
                    overwrite=overwrite, protected=protected, ab_transform=ab_transform, points=points,
                    on_progress=on_progress, on_error=on_error, **options)
    return report


def colorize_chunks(
    colorizer: Colorizer,
    chunks: Sequence[Sequence[Job]],
    report: ColorizeReport,
    size: int | None = None,
    batch_size: int = 32,
    overwrite: bool = False,
    protected: frozenset[Path] = frozenset(),
    ab_transform: AbTransform | None = None,
    points: Mapping[Path, Sequence[ColorPoint]] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    skip: frozenset[Path] = frozenset(),
    before_write: Callable[[Job], None] | None = None,
    on_done: Callable[[Job, str | None], None] | None = None,
    **options: Any,
) -> None:
    """The per-photo work of every colorize command: decode, colorize, merge, write atomically.

    ``chunks``: checked jobs (see ``check_jobs``) in chunks (see ``chunked``); a batch never
    crosses a chunk. Results go to ``report``, ``on_error`` (one line per bad photo),
    ``on_progress`` (photos finished) and ``on_done`` (each job, its error's reason or None).
    ``skip``: targets already written by an earlier run; their photos still join their batch
    (so the others' batches stay the same) but are neither written nor reported.
    ``before_write``: called just before a job's output is written (a journal's intent line).
    """
    on_error = on_error or (lambda message: log.error(message))
    # Three stages overlap: decoding the next batch (a thread), the network on this one (here),
    # and merging + writing the previous one at full resolution (another thread); numpy, OpenCV,
    # Pillow and onnxruntime release the GIL. On 2 busy cores that gains a few percent, on more
    # cores more. At most one batch waits to be written, so memory stays at three batches.

    def finish(job: Job, error: BadImageError | None, message: str | None = None) -> None:
        if error is None:
            report.written.append(job.target)
        else:
            report.failed[job.source] = error.reason
            on_error(message or f"{job.source}: {error.reason}")
        if on_done is not None:
            on_done(job, None if error is None else error.reason)

    def record(written: list[tuple[Job, BadImageError | None]]) -> None:
        for job, error in written:
            finish(job, error)
        if on_progress:
            on_progress(len(written))

    batches = _batches(chunks, batch_size)  # read by the reader thread only
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        upcoming = reader.submit(next, batches, [])
        writing = None
        while loaded := upcoming.result():
            upcoming = reader.submit(next, batches, [])
            good, failed_now = [], []
            for job, image in loaded:
                if isinstance(image, BadImageError):
                    if job.target not in skip:
                        finish(job, image, str(image))  # a decoding error names the file it read
                        failed_now.append(job)
                else:
                    good.append((job, image))
            ab_small = colorizer.predict_photos(
                [image for _, image in good], size=size, ab_transform=ab_transform, **options
            )
            if writing is not None:
                record(writing.result())
            writing = writer.submit(_merge_and_save, colorizer, good, ab_small, overwrite, protected, points or {},
                                    skip, before_write)
            if on_progress and failed_now:
                on_progress(len(failed_now))
        if writing is not None:
            record(writing.result())
