"""``chromalab prepare``: a photo folder -> a clean training set of resized photos (and shards).

Every source photo is decoded once (in parallel), measured (size, monochrome, a hash of its
decoded pixels) and, if it is to be kept, resized and written to the mirrored path in DST.
What was learnt about each source is appended to ``DST/prepare-journal.jsonl`` as soon as it
is known, so an interrupted run loses nothing: a re-run trusts the journal for every source
whose size and modification time are unchanged and whose output exists (writes are atomic,
so an output that exists is complete), and only works on the rest.

Decisions (kept, or the reason dropped) are made in the parent process, in sorted path order,
from those facts: that keeps duplicate detection deterministic (the first path in sorted order
keeps the photo) whatever order the workers finish in. SRC is only ever read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from chromalab.atomic import write_text_atomic
from chromalab.data.explore import map_in_order
from chromalab.data.folder import list_images
from chromalab.data.images import (
    JPEG_QUALITY,
    BadImageError,
    is_monochrome,
    open_rgb,
    read_size,
    resize_center_crop,
    save_image_atomic,
)
from chromalab.data.shards import ShardItem, shard_key, shard_pattern, write_shards
from chromalab.errors import ChromalabError

log = logging.getLogger(__name__)

FORMATS = {"jpg": ".jpg", "png": ".png", "webp": ".webp"}
# Lossy formats' default quality. WebP at 80 is about 3 KB for a 128-pixel photo, 35% smaller
# than JPEG at 90 for the same look: a whole training set then fits a small upload.
DEFAULT_QUALITY = {"jpg": JPEG_QUALITY, "webp": 90}
CROPS = ("center", "none")
REASONS = ("kept", "unreadable", "too-small", "grayscale", "duplicate", "write-error")
SETTINGS_FILE = "prepare.json"
JOURNAL_FILE = "prepare-journal.jsonl"
MANIFEST_FILE = "manifest.csv"
SUMMARY_FILE = "summary.json"
SHARDS_FOLDER = "shards"


@dataclass(frozen=True)
class PrepareOptions:
    size: int = 256  # shorter side of the outputs
    crop: str = "center"  # center: size x size squares; none: keep the aspect ratio
    min_size: int = 64  # drop photos whose shorter side is smaller
    drop_gray: bool = False
    dedupe: bool = False
    format: str = "jpg"
    quality: int | None = None  # jpg/webp quality; None: DEFAULT_QUALITY
    shards: int | None = None  # photos per tar shard; None: no shards
    seed: int = 0  # shard packing order

    def validate(self) -> None:
        if self.size < 8:
            raise ChromalabError(f"--size {self.size}: must be at least 8")
        if self.min_size < 1:
            raise ChromalabError(f"--min-size {self.min_size}: must be at least 1")
        if self.crop not in CROPS:
            raise ChromalabError(f"--crop {self.crop}: choose {' or '.join(CROPS)}")
        if self.format not in FORMATS:
            raise ChromalabError(f"--format {self.format}: choose {' or '.join(FORMATS)}")
        if self.shards is not None and self.shards < 1:
            raise ChromalabError(f"--shards {self.shards}: give the number of photos per shard (>= 1)")
        if self.quality is not None and not (1 <= self.quality <= 100 and self.format in DEFAULT_QUALITY):
            raise ChromalabError(f"--quality {self.quality}: give 1..100, with --format jpg or webp")

    def save_options(self) -> dict[str, Any]:
        """Pillow's options for writing an output file."""
        if self.format not in DEFAULT_QUALITY:
            return {}
        return {"quality": self.quality or DEFAULT_QUALITY[self.format]}

    def output_settings(self) -> dict[str, Any]:
        """The options that change what an output file contains: a re-run must match them."""
        settings: dict[str, Any] = {"size": self.size, "crop": self.crop, "format": self.format}
        if self.quality is not None:  # absent before --quality existed: old folders still resume
            settings["quality"] = self.quality
        return settings


@dataclass
class SourceFacts:
    """What one source file is, whatever the options (the journal's unit)."""

    source: str  # path relative to SRC, posix
    signature: str  # size:mtime_ns when examined
    width: int = 0  # stored size, EXIF orientation applied
    height: int = 0
    monochrome: bool = False
    digest: str = ""  # hash of the decoded pixels
    error: str = ""  # why it could not be read
    write_error: str = ""  # why its output could not be written (retried on the next run)
    written: bool = False  # this folder's prepare wrote the output: the only kind it may replace


@dataclass
class PrepareSummary:
    counts: Counter = field(default_factory=Counter)  # status -> photos
    written: int = 0  # outputs written by this run
    reused: int = 0  # outputs already complete from an earlier run
    removed: int = 0  # stale outputs deleted (dropped now, e.g. a duplicate)
    problems: list[dict[str, str]] = field(default_factory=list)  # unreadable / unwritable files
    shards: list[str] = field(default_factory=list)
    shard_pattern: str = ""  # for --data
    seconds: float = 0.0

    def to_dict(self, src: Path, dst: Path, options: PrepareOptions) -> dict[str, Any]:
        return {
            "source": str(src), "destination": str(dst), "options": asdict(options),
            "total": sum(self.counts.values()),
            "counts": {reason: self.counts.get(reason, 0) for reason in REASONS},
            "written": self.written, "reused": self.reused, "removed": self.removed,
            "shards": self.shards, "shard_pattern": self.shard_pattern,
            "seconds": round(self.seconds, 3), "problems": self.problems,
        }


# --- Paths --------------------------------------------------------------------------------


def check_folders(src: Path, dst: Path) -> tuple[Path, Path]:
    """Resolved (SRC, DST); refuses any overlap, so SRC can never be written to."""
    if not src.is_dir():
        raise ChromalabError(f"{src}: no such folder")
    src, dst = src.resolve(), dst.resolve()
    if dst == src or src in dst.parents:
        raise ChromalabError(f"{dst}: the output folder must be outside the source folder {src}")
    if dst in src.parents:
        raise ChromalabError(f"{dst}: the output folder must not contain the source folder {src}")
    return src, dst


def plan_outputs(sources: Sequence[str], extension: str) -> dict[str, str]:
    """Source relative path -> output relative path: the same tree, the new extension.

    Two sources that would land on one name (``x.png`` and ``x.jpg``, or ``X.JPG`` beside
    ``x.jpg`` on a case-insensitive disk) are kept apart: the later one in sorted order gets
    its old extension in the name (``x-png.jpg``).
    """
    taken: set[str] = set()
    plan: dict[str, str] = {}
    for source in sorted(sources):
        path = PurePosixPath(source)
        stem = str(path.with_suffix(""))
        candidate = f"{stem}{extension}"
        counter = 1
        while candidate.lower() in taken:
            tag = path.suffix.lstrip(".").lower() or "file"
            candidate = f"{stem}-{tag}{extension}" if counter == 1 else f"{stem}-{tag}-{counter}{extension}"
            counter += 1
        taken.add(candidate.lower())
        plan[source] = candidate
    return plan


def file_signature(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


# --- Per-source work (worker processes) ----------------------------------------------------


def pixel_digest(image: Image.Image) -> str:
    """Hash of decoded pixels and size: the same photo saved twice under two names matches.

    The image is decoded with the JPEG draft at the output size, which is deterministic for
    a given file content, so byte-identical JPEGs and any two losslessly stored copies of the
    same pixels (PNG, BMP, TIFF...) hash alike, even with different metadata.
    """
    array = np.asarray(image, dtype=np.uint8)
    digest = hashlib.blake2b(f"{array.shape}".encode(), digest_size=16)
    digest.update(array.tobytes())
    return digest.hexdigest()


def resize_for_output(image: Image.Image, size: int, crop: str) -> Image.Image:
    if crop == "center":
        return resize_center_crop(image, size)
    width, height = image.size
    scale = size / min(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)


def is_candidate(facts: SourceFacts, options: PrepareOptions) -> bool:
    """Would this source be kept, duplicates aside?"""
    return (not facts.error and min(facts.width, facts.height) >= options.min_size
            and not (options.drop_gray and facts.monochrome))


def examine_source(src: str, relative: str, output: str | None, options: PrepareOptions,
                   replace: bool = False) -> SourceFacts:
    """Measure one source and, when it is a candidate and ``output`` is given, write it.

    ``replace``: the output path holds a file this prepare folder wrote earlier; any other file
    there is never replaced (the photo is then reported as a write error).
    """
    path = Path(src) / relative
    facts = SourceFacts(relative, file_signature(path))
    try:
        # The draft only skips detail below the output size: JPEGs decode several times faster.
        image = open_rgb(path, draft_size=options.size)
        facts.width, facts.height = read_size(path)  # the stored size, not the draft's
    except BadImageError as error:
        facts.error = error.reason
        return facts
    facts.monochrome = is_monochrome(image)
    facts.digest = pixel_digest(image)
    if output is not None and is_candidate(facts, options):
        try:
            save_image_atomic(resize_for_output(image, options.size, options.crop), Path(output), overwrite=replace,
                              **options.save_options())
            facts.written = True
        except BadImageError as error:
            facts.write_error = error.reason
    return facts


def _examine_task(task: tuple[str, str, str | None, PrepareOptions, bool]) -> SourceFacts:
    return examine_source(*task)


# --- The journal ---------------------------------------------------------------------------


def load_journal(dst: Path) -> dict[str, SourceFacts]:
    """Facts from earlier runs (the last line per source wins; a torn last line is ignored)."""
    path = dst / JOURNAL_FILE
    facts: dict[str, SourceFacts] = {}
    if not path.is_file():
        return facts
    with open(path) as handle:
        for line in handle:
            try:
                record = SourceFacts(**json.loads(line))
            except (ValueError, TypeError):
                continue
            facts[record.source] = record
    return facts


def check_destination(dst: Path) -> None:
    """DST must be new, empty, or a folder prepare made (it holds prepare.json): nothing else
    is ever written into, so a user's own files can never be replaced or removed."""
    if dst.exists() and not dst.is_dir():
        raise ChromalabError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and not (dst / SETTINGS_FILE).is_file() and any(dst.iterdir()):
        raise ChromalabError(f"{dst}: not empty and not a folder chromalab prepare made (no {SETTINGS_FILE}); "
                             "give a new or empty output folder")


def written_outputs(dst: Path, journal: dict[str, SourceFacts], outputs: dict[str, str]) -> set[str]:
    """Outputs earlier runs of this folder wrote (journal and manifest): the only files it may replace."""
    ours = {outputs[source] for source, facts in journal.items() if source in outputs and facts.written}
    if (dst / MANIFEST_FILE).is_file():
        with open(dst / MANIFEST_FILE, newline="") as handle:
            ours |= {row["output"] for row in csv.DictReader(handle) if row.get("output")}
    return ours


def check_settings(dst: Path, options: PrepareOptions) -> None:
    """A DST prepared with another size, crop or format cannot be resumed: say so."""
    path = dst / SETTINGS_FILE
    if path.is_file():
        try:
            earlier = json.loads(path.read_text()).get("output", {})
        except ValueError:
            earlier = {}
        if earlier and earlier != options.output_settings():
            described = ", ".join(f"{k} {v}" for k, v in earlier.items())
            raise ChromalabError(f"{dst} was prepared with {described}; use another output folder "
                                 "(or the same options to resume)")
    write_text_atomic(path, json.dumps({"output": options.output_settings(), "options": asdict(options)}, indent=1))


# --- The run -------------------------------------------------------------------------------


def _decide(facts: SourceFacts, options: PrepareOptions, owners: dict[str, str]) -> tuple[str, str]:
    """(status, detail) for one source, in sorted order (``owners``: digest -> first source)."""
    if facts.error:
        return ("too-small" if facts.error.startswith("too small") else "unreadable"), facts.error
    if min(facts.width, facts.height) < options.min_size:
        return "too-small", f"{facts.width}x{facts.height}, shorter side under {options.min_size}"
    if options.drop_gray and facts.monochrome:
        return "grayscale", ""
    if options.dedupe:
        owner = owners.setdefault(facts.digest, facts.source)
        if owner != facts.source:
            return "duplicate", f"same pixels as {owner}"
    if facts.write_error:
        return "write-error", facts.write_error
    return "kept", ""


def _plan(sources: list[str], src: Path, dst: Path, outputs: dict[str, str], options: PrepareOptions,
          journal: dict[str, SourceFacts]) -> tuple[dict[str, SourceFacts], set[str]]:
    """(facts still valid from the journal, sources that need a worker).

    A worker is needed for unknown or changed sources, for failed writes, and for keepers
    whose output is missing. Known duplicates of known photos are not decoded just to be
    dropped again.
    """
    known: dict[str, SourceFacts] = {}
    todo: set[str] = set()
    provisional: dict[str, str] = {}
    for source in sources:
        facts = journal.get(source)
        if facts is None or facts.signature != file_signature(src / source) or facts.write_error:
            todo.add(source)
            continue
        known[source] = facts
        status, _ = _decide(facts, options, provisional)
        if status == "kept" and not (dst / outputs[source]).is_file():
            todo.add(source)
    return known, todo


def _progress_bar(progress: bool):  # -> rich.progress.Progress
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not progress)


def _write_manifest(path: Path, rows: list[tuple[str, str, int, int, str, str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # pixel_digest: BLAKE2b of the decoded source pixels (what --dedupe compares), so a corpus
    # rebuilt from the same sources can be checked photo by photo.
    writer.writerow(("source", "output", "width", "height", "status", "detail", "pixel_digest"))
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def prepare(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    options: PrepareOptions = PrepareOptions(),
    workers: int | None = None,
    progress: bool = True,
    on_error: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Prepare SRC into DST (see the module docstring); returns the summary (also saved).

    Each unreadable or unwritable photo is reported once, as ``path: reason``, to ``on_error``
    (default: the log), and listed in the summary's ``problems``.
    """
    on_error = on_error or (lambda message: log.warning("%s", message))
    options.validate()
    src, dst = check_folders(Path(src), Path(dst))
    start = time.perf_counter()
    sources = [p.relative_to(src).as_posix() for p in list_images(src)]
    if not sources:
        raise ChromalabError(f"{src}: no photos found")
    check_destination(dst)
    dst.mkdir(parents=True, exist_ok=True)
    check_settings(dst, options)
    outputs = plan_outputs(sources, FORMATS[options.format])
    journal_facts = load_journal(dst)
    known, todo = _plan(sources, src, dst, outputs, options, journal_facts)
    ours = written_outputs(dst, journal_facts, outputs)  # grows with what this run writes
    workers = workers if workers is not None else (os.cpu_count() or 1)
    tasks = ((str(src), s, str(dst / outputs[s]), options, outputs[s] in ours) for s in sources if s in todo)

    summary = PrepareSummary()
    owners: dict[str, str] = {}  # pixel digest -> the source that keeps the photo
    rows: list[tuple[str, str, int, int, str, str, str]] = []
    results = map_in_order(_examine_task, tasks, workers)
    try:
        with _progress_bar(progress) as bar, open(dst / JOURNAL_FILE, "a") as journal:
            task = bar.add_task("Preparing photos", total=len(sources))
            for source in sources:  # in sorted order, whatever order the workers finish in
                fresh = source in todo
                facts = next(results) if fresh else known[source]
                status, detail = _decide(facts, options, owners)
                output = dst / outputs[source]
                if status == "kept" and not output.is_file():
                    # Only if a source changed while this run read it (a known duplicate whose
                    # original now hashes differently): do it here rather than skip it.
                    facts, fresh = examine_source(str(src), source, str(output), options, outputs[source] in ours), True
                    status, detail = _decide(facts, options, owners)
                if facts.written:
                    ours.add(outputs[source])
                if fresh:  # recorded at once: an interrupted run keeps what it learnt
                    journal.write(json.dumps(asdict(facts)) + "\n")
                    journal.flush()
                if status == "kept":
                    summary.written += fresh
                    summary.reused += not fresh
                elif output.is_file() and outputs[source] in ours:
                    output.unlink()  # ours: written now as a duplicate, or by an earlier run
                    summary.removed += 1
                    # No longer ours: a file put there later is someone else's.
                    facts.written = False
                    ours.discard(outputs[source])
                    journal.write(json.dumps(asdict(facts)) + "\n")
                    journal.flush()
                if status in ("unreadable", "write-error"):
                    summary.problems.append({"path": source, "status": status, "reason": detail})
                    on_error(f"{src / source}: {detail}")
                summary.counts[status] += 1
                rows.append((source, outputs[source] if status == "kept" else "", facts.width, facts.height,
                             status, detail, facts.digest))
                bar.advance(task)
    finally:
        results.close()  # on an interruption: cancel the queued work

    # The journal compacted to the current sources, the manifest, the shards, the summary.
    current = {**known, **load_journal(dst)}
    write_text_atomic(dst / JOURNAL_FILE, "".join(json.dumps(asdict(current[s])) + "\n" for s in sources))
    _write_manifest(dst / MANIFEST_FILE, rows)
    if options.shards:
        items = [
            ShardItem(shard_key(output), dst / output,
                      {"source": source, "source_width": width, "source_height": height})
            for source, output, width, height, status, _, _ in rows if status == "kept"
        ]
        shards = write_shards(items, dst / SHARDS_FOLDER, options.shards, options.seed, progress)
        summary.shards = [str(p.relative_to(dst)) for p in sorted(shards)]
        summary.shard_pattern = shard_pattern(dst / SHARDS_FOLDER, len(shards)) if shards else ""
    summary.seconds = time.perf_counter() - start
    result = summary.to_dict(src, dst, options)
    write_text_atomic(dst / SUMMARY_FILE, json.dumps(result, indent=1))
    return result
