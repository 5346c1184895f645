"""Explore a photo collection: color statistics, sizes, grayscale share and colorfulness.

One streaming pass. Each worker process analyses a chunk of photos and returns the chunk's
*sums* (histograms, counts, moments); the parent adds them up. Nothing per pixel is ever
kept, and nothing per photo stays in memory either (per-photo rows stream to ``photos.csv``),
so memory does not grow with the number of photos.

Photos are analysed at a bounded size (``ANALYSIS_SIZE`` on the longer side, the JPEG
decoder skipping the detail below it) so that speed does not depend on resolution. Widths
and heights are the stored sizes, read from the file header.

What is exact and what is binned:

* RGB: 8-bit values, so the 256-bin histograms *are* the distributions. Count, mean, std,
  min, quartiles, median and max are exact.
* Lab (OpenCV, D65, float): mean, std, min and max come from float64 sums and are exact up
  to rounding; quartiles and median come from 1-unit histograms (L* 0..100, a*/b* -128..127),
  interpolated linearly inside the bin, so they are within one unit of the true value.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import random
import time
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from chromalab.atomic import OutputExistsError, atomic_target, check_outputs_free, write_text_atomic
from chromalab.data.folder import list_images
from chromalab.data.images import (
    IMAGE_EXTENSIONS,
    BadImageError,
    check_writable_folder,
    is_monochrome,
    open_rgb,
    read_size,
    rgb_to_lab_array,
)
from chromalab.errors import ChromalabError

# Every file a report holds (the plots only with plots=True): checked before any photo is read,
# so an existing one (without overwrite) stops the command before the work, not after it.
TABLE_FILES = ("photos.csv", "channels.csv", "histogram_rgb.csv", "histogram_lab.csv", "histogram_ab.csv",
               "histogram_colorfulness.csv", "sizes.csv", "stats.json", "report.md")
PLOT_FILES = ("histogram_rgb.png", "histogram_lab.png", "ab_density.png", "sizes.png", "colorfulness.png")
ANALYSIS_SIZE = 256  # longer side, in pixels, at which each photo is analysed
CHUNK = 32  # photos per worker task: few enough to keep the bar moving, enough to amortize IPC

# Histogram layouts (bin edges): 1-unit bins everywhere except the 2-D ab plane (2 units).
RGB_EDGES = np.arange(257, dtype=np.float64)  # bin v holds the value v
LAB_EDGES = {
    "L": np.linspace(0.0, 100.0, 101),
    "a": np.arange(-128.0, 129.0),
    "b": np.arange(-128.0, 129.0),
}
AB_PLANE_BINS = 128  # over -128..128 on both axes
CHROMA_EDGES = np.arange(0.0, 183.0)  # C*ab of sRGB colors stays below about 134
COLORFULNESS_EDGES = np.arange(0.0, 201.0)  # per photo; larger values go in the last bin
SIZE_BIN = 16  # pixels, for the 2-D width x height histogram

# Hasler & Suesstrunk (2003), table 2: colorfulness M of the category boundaries.
COLORFULNESS_CATEGORIES = (
    ("not colorful", 0.0),
    ("slightly", 15.0),
    ("moderately", 33.0),
    ("averagely", 45.0),
    ("quite", 59.0),
    ("highly", 82.0),
    ("extremely", 109.0),
)
CHANNELS = ("R", "G", "B", "L", "a", "b")
PHOTO_COLUMNS = ("path", "width", "height", "monochrome", "colorfulness", "mean_L", "mean_chroma", "error")
MAX_LISTED_ERRORS = 1000  # unreadable files named in stats.json (all are in photos.csv)


# --- Per-photo measurements ---------------------------------------------------------------


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colorfulness M of an (H, W, 3) uint8 sRGB array.

    rg = R - G, yb = (R + G) / 2 - B;  M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2).
    0 for gray; about 15 "slightly", 45 "averagely", 109+ "extremely" colorful.
    """
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(np.hypot(rg.std(dtype=np.float64), yb.std(dtype=np.float64))
                 + 0.3 * np.hypot(rg.mean(dtype=np.float64), yb.mean(dtype=np.float64)))


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts over equal-width ``edges``; values outside go to the first or last bin."""
    width = edges[1] - edges[0]
    index = np.floor((values - edges[0]) / width).astype(np.int64)
    np.clip(index, 0, len(edges) - 2, out=index)
    return np.bincount(index.ravel(), minlength=len(edges) - 1)


@dataclass
class CollectionStats:
    """Additive summary of many photos: merge two and you get the summary of both."""

    photos: int = 0
    monochrome: int = 0
    unreadable: int = 0
    pixels: int = 0
    rgb_hist: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), np.int64))
    lab_hist: dict[str, np.ndarray] = field(
        default_factory=lambda: {c: np.zeros(len(e) - 1, np.int64) for c, e in LAB_EDGES.items()}
    )
    lab_sum: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float64))
    lab_sumsq: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float64))
    lab_min: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    lab_max: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))
    ab_plane: np.ndarray = field(default_factory=lambda: np.zeros((AB_PLANE_BINS, AB_PLANE_BINS), np.int64))
    chroma_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(CHROMA_EDGES) - 1, np.int64))
    colorfulness_hist: np.ndarray = field(
        default_factory=lambda: np.zeros(len(COLORFULNESS_EDGES) - 1, np.int64)
    )
    colorfulness_sum: float = 0.0
    colorfulness_sumsq: float = 0.0
    widths: Counter = field(default_factory=Counter)
    heights: Counter = field(default_factory=Counter)
    size_grid: Counter = field(default_factory=Counter)  # (width // SIZE_BIN, height // SIZE_BIN)
    errors: list[tuple[str, str]] = field(default_factory=list)  # the first MAX_LISTED_ERRORS

    def add_photo(self, rgb: np.ndarray, width: int, height: int, monochrome: bool) -> tuple[float, float, float]:
        """Add one analysed photo; returns (colorfulness, mean L*, mean chroma) for its row."""
        # Channel-major, contiguous rows: numpy reduces those several times faster than
        # the columns of an (N, 3) array.
        channels = np.ascontiguousarray(rgb.reshape(-1, 3).T)
        lab = np.ascontiguousarray(rgb_to_lab_array(rgb).reshape(-1, 3).T)
        self.photos += 1
        self.monochrome += int(monochrome)
        self.pixels += channels.shape[1]
        for channel in range(3):
            self.rgb_hist[channel] += np.bincount(channels[channel], minlength=256)
        for row, (name, edges) in enumerate(LAB_EDGES.items()):
            values = lab[row]
            self.lab_hist[name] += _histogram(values, edges)
            wide = values.astype(np.float64)
            self.lab_sum[row] += wide.sum()
            self.lab_sumsq[row] += np.square(wide).sum()  # not np.dot: BLAS threads would spin
            self.lab_min[row] = min(self.lab_min[row], float(values.min()))
            self.lab_max[row] = max(self.lab_max[row], float(values.max()))
        scale = AB_PLANE_BINS / 256.0
        a_index = np.clip(((lab[1] + 128.0) * scale).astype(np.int64), 0, AB_PLANE_BINS - 1)
        b_index = np.clip(((lab[2] + 128.0) * scale).astype(np.int64), 0, AB_PLANE_BINS - 1)
        self.ab_plane += np.bincount(a_index * AB_PLANE_BINS + b_index, minlength=AB_PLANE_BINS**2).reshape(
            AB_PLANE_BINS, AB_PLANE_BINS
        )
        chroma = np.sqrt(np.square(lab[1]) + np.square(lab[2]))
        self.chroma_hist += _histogram(chroma, CHROMA_EDGES)
        score = colorfulness(rgb)
        self.colorfulness_hist += _histogram(np.array([score]), COLORFULNESS_EDGES)
        self.colorfulness_sum += score
        self.colorfulness_sumsq += score * score
        self.widths[width] += 1
        self.heights[height] += 1
        self.size_grid[(width // SIZE_BIN, height // SIZE_BIN)] += 1
        return score, float(lab[0].mean(dtype=np.float64)), float(chroma.mean(dtype=np.float64))

    def add_error(self, path: str, reason: str) -> None:
        self.unreadable += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append((path, reason))

    def merge(self, other: CollectionStats) -> None:
        self.photos += other.photos
        self.monochrome += other.monochrome
        self.unreadable += other.unreadable
        self.pixels += other.pixels
        self.rgb_hist += other.rgb_hist
        for name in self.lab_hist:
            self.lab_hist[name] += other.lab_hist[name]
        self.lab_sum += other.lab_sum
        self.lab_sumsq += other.lab_sumsq
        np.minimum(self.lab_min, other.lab_min, out=self.lab_min)
        np.maximum(self.lab_max, other.lab_max, out=self.lab_max)
        self.ab_plane += other.ab_plane
        self.chroma_hist += other.chroma_hist
        self.colorfulness_hist += other.colorfulness_hist
        self.colorfulness_sum += other.colorfulness_sum
        self.colorfulness_sumsq += other.colorfulness_sumsq
        self.widths.update(other.widths)
        self.heights.update(other.heights)
        self.size_grid.update(other.size_grid)
        self.errors.extend(other.errors[: max(0, MAX_LISTED_ERRORS - len(self.errors))])


def load_for_analysis(path: str | os.PathLike[str], size: int = ANALYSIS_SIZE) -> tuple[np.ndarray, int, int]:
    """(thumbnail as (h, w, 3) uint8, stored width, stored height) of one photo."""
    image = open_rgb(path, draft_size=size)  # first: its one-line reasons are the clearest
    width, height = read_size(path)
    image.thumbnail((size, size))
    return np.asarray(image, dtype=np.uint8), width, height


def analyse_chunk(paths: list[str], size: int = ANALYSIS_SIZE) -> tuple[CollectionStats, list[tuple]]:
    """Sums over ``paths`` and one row per photo (runs in a worker process)."""
    stats = CollectionStats()
    rows: list[tuple] = []
    for path in paths:
        try:
            rgb, width, height = load_for_analysis(path, size)
        except BadImageError as error:
            stats.add_error(path, error.reason)
            rows.append((path, "", "", "", "", "", "", error.reason))
            continue
        monochrome = is_monochrome(Image.fromarray(rgb))
        score, mean_l, mean_chroma = stats.add_photo(rgb, width, height, monochrome)
        rows.append((path, width, height, int(monochrome), round(score, 3), round(mean_l, 3),
                     round(mean_chroma, 3), ""))
    return stats, rows


def init_worker() -> None:
    # One process per core already; OpenCV's own thread pool would only oversubscribe them.
    import cv2

    cv2.setNumThreads(1)


def map_in_order(
    function: Callable[[Any], Any], tasks: Iterable[Any], workers: int, window: int | None = None
) -> Iterator[Any]:
    """``function(task)`` for each task, results in task order (used by explore and prepare).

    A process pool with at most ``window`` tasks in flight, so memory stays flat for any
    number of tasks (``executor.map`` would queue every task up front); ``workers`` <= 1 runs
    inline. Closing the iterator early cancels what has not started.
    """
    if workers <= 1:
        for task in tasks:
            yield function(task)
        return
    window = window or 4 * workers
    # forkserver, not fork: forking a process that runs threads (the pool's own feeder thread,
    # torch's and OpenCV's pools) can copy a held lock into a child that then waits forever;
    # that hung `prepare --workers 2` now and then. Workers start from a clean server process.
    context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
        pending: deque[Future] = deque()
        try:
            for task in tasks:
                pending.append(pool.submit(function, task))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


# --- Statistics from the sums -------------------------------------------------------------


def histogram_quantile(counts: np.ndarray, edges: np.ndarray, q: float, discrete: bool = False) -> float:
    """The ``q`` quantile (0..1) of the values a histogram counts.

    ``discrete``: each bin holds one integer value (the 8-bit RGB case) and the result is
    exact, the smallest value whose cumulative share reaches q (numpy's "inverted_cdf").
    Otherwise values are spread evenly inside each bin and the result is interpolated, so it
    is within one bin width of the true quantile.
    """
    total = int(counts.sum())
    if total == 0:
        return math.nan
    cumulative = np.cumsum(counts)
    target = q * total
    if discrete:
        index = int(np.searchsorted(cumulative, target, side="left"))
        return float(edges[min(index, len(counts) - 1)])
    index = int(np.searchsorted(cumulative, target, side="left"))
    index = min(index, len(counts) - 1)
    before = cumulative[index - 1] if index > 0 else 0
    inside = counts[index]
    fraction = (target - before) / inside if inside else 0.0
    return float(edges[index] + fraction * (edges[index + 1] - edges[index]))


def channel_table(stats: CollectionStats) -> list[dict[str, Any]]:
    """count, mean, std (population), min, q25, median, q75, max for R, G, B, L*, a*, b*."""
    rows: list[dict[str, Any]] = []
    values = np.arange(256, dtype=np.float64)
    for channel, name in enumerate("RGB"):
        counts = stats.rgb_hist[channel]
        n = int(counts.sum())
        if n == 0:
            continue
        mean = float((counts * values).sum() / n)
        variance = float((counts * np.square(values - mean)).sum() / n)
        present = np.flatnonzero(counts)
        rows.append({
            "channel": name, "count": n, "mean": mean, "std": math.sqrt(variance),
            "min": float(present[0]),
            **{key: histogram_quantile(counts, RGB_EDGES, q, discrete=True) for key, q in _QUARTILES},
            "max": float(present[-1]), "quantiles": "exact",
        })
    for column, name in enumerate(LAB_EDGES):
        n = int(stats.lab_hist[name].sum())
        if n == 0:
            continue
        mean = float(stats.lab_sum[column] / n)
        variance = max(0.0, float(stats.lab_sumsq[column] / n - mean * mean))
        rows.append({
            "channel": name, "count": n, "mean": mean, "std": math.sqrt(variance),
            "min": float(stats.lab_min[column]),
            **{key: histogram_quantile(stats.lab_hist[name], LAB_EDGES[name], q) for key, q in _QUARTILES},
            "max": float(stats.lab_max[column]), "quantiles": "binned (1 unit)",
        })
    return rows


_QUARTILES = (("q25", 0.25), ("median", 0.5), ("q75", 0.75))


def _counter_summary(counter: Counter) -> dict[str, float]:
    if not counter:
        return {}
    values = np.array(sorted(counter), dtype=np.float64)
    counts = np.array([counter[int(v)] for v in values], dtype=np.int64)
    cumulative = np.cumsum(counts)
    total = cumulative[-1]

    def quantile(q: float) -> float:
        return float(values[int(np.searchsorted(cumulative, q * total, side="left"))])

    return {
        "min": float(values[0]), "q25": quantile(0.25), "median": quantile(0.5),
        "q75": quantile(0.75), "max": float(values[-1]),
        "mean": float((values * counts).sum() / total),
    }


def summarize(stats: CollectionStats) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-able numbers."""
    n = max(stats.photos, 1)
    colorfulness_mean = stats.colorfulness_sum / n
    colorfulness_std = math.sqrt(max(0.0, stats.colorfulness_sumsq / n - colorfulness_mean**2))
    bounds = [b for _, b in COLORFULNESS_CATEGORIES[1:]]
    category_counts = [0] * len(COLORFULNESS_CATEGORIES)
    for low, count in zip(COLORFULNESS_EDGES[:-1], stats.colorfulness_hist):
        category_counts[int(np.searchsorted(bounds, low, side="right"))] += int(count)
    chroma_total = max(int(stats.chroma_hist.sum()), 1)
    chroma_cumulative = np.cumsum(stats.chroma_hist) / chroma_total
    return {
        "photos": stats.photos,
        "unreadable": stats.unreadable,
        "monochrome": stats.monochrome,
        "monochrome_fraction": stats.monochrome / n if stats.photos else 0.0,
        "analysed_pixels": stats.pixels,
        "analysis_size": ANALYSIS_SIZE,
        "channels": channel_table(stats),
        "width": _counter_summary(stats.widths),
        "height": _counter_summary(stats.heights),
        "colorfulness": {
            "mean": colorfulness_mean,
            "std": colorfulness_std,
            **{key: histogram_quantile(stats.colorfulness_hist, COLORFULNESS_EDGES, q) for key, q in _QUARTILES},
            "categories": {name: count for (name, _), count in zip(COLORFULNESS_CATEGORIES, category_counts)},
        },
        # The pull toward gray: how much of all pixels sits near the neutral axis.
        "chroma_share_below": {str(limit): float(chroma_cumulative[limit - 1]) for limit in (5, 10, 20, 40)},
        "unreadable_files": [{"path": p, "reason": r} for p, r in stats.errors],
    }


# --- The pass over a collection -----------------------------------------------------------


@dataclass
class ExploreResult:
    stats: CollectionStats
    summary: dict[str, Any]
    out: Path
    files: list[Path]
    seconds: float

    @property
    def photos_per_second(self) -> float:
        return (self.stats.photos + self.stats.unreadable) / self.seconds if self.seconds > 0 else 0.0


def select_photos(root: Path, limit: int | None, seed: int = 0) -> list[str]:
    """All photos below ``root``, or a seeded random sample of ``limit`` of them (sorted)."""
    paths = [str(p) for p in list_images(root)]
    if limit is not None and 0 < limit < len(paths):
        # A random sample, not the first N: sorted paths are grouped by folder (= by class).
        paths = sorted(random.Random(seed).sample(paths, limit))
    return paths


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _analyse_task(task: tuple[list[str], int]) -> tuple[CollectionStats, list[tuple]]:
    return analyse_chunk(*task)


def analyse_all(
    paths: list[str], workers: int, size: int = ANALYSIS_SIZE, progress: bool = True
) -> Iterator[tuple[CollectionStats, list[tuple]]]:
    """Chunk results in path order, computed by ``workers`` processes, with a progress bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    chunks = list(_chunks(paths, CHUNK))
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("Analysing photos", total=len(paths))
        results = map_in_order(_analyse_task, ((chunk, size) for chunk in chunks),
                               workers if len(chunks) > 1 else 1)
        try:
            for chunk, result in zip(chunks, results):
                yield result
                bar.advance(task, len(chunk))
        finally:
            results.close()


def explore_collection(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    workers: int | None = None,
    limit: int | None = None,
    size: int = ANALYSIS_SIZE,
    progress: bool = True,
    seed: int = 0,
    plots: bool = True,
    overwrite: bool = False,
    on_error: Callable[[str, str], None] | None = None,
) -> ExploreResult:
    """Analyse every photo below ``root`` and write the report into the folder ``out``.

    Report files already in ``out`` are only replaced with ``overwrite``. ``on_error(path,
    reason)`` hears of each unreadable photo as soon as it is known (the report lists them too).
    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ChromalabError(f"{root}: no such folder")
    check_outputs_free(out, TABLE_FILES + (PLOT_FILES if plots else ()), overwrite)
    paths = select_photos(root, limit, seed)
    if not paths:
        raise ChromalabError(f"{root}: no photos found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    check_writable_folder(out)
    workers = workers or os.cpu_count() or 1
    stats = CollectionStats()
    start = time.perf_counter()
    photos_csv = out / "photos.csv"
    try:
        # Streamed into a temporary file that becomes photos.csv only when complete.
        with atomic_target(photos_csv, replace=overwrite) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(PHOTO_COLUMNS)
            for chunk_stats, rows in analyse_all(paths, workers, size, progress):
                stats.merge(chunk_stats)
                writer.writerows(rows)
                if on_error:
                    for row in rows:
                        if row[-1]:
                            on_error(row[0], row[-1])
        seconds = time.perf_counter() - start
        summary = summarize(stats)
        summary.update({"root": str(root), "seconds": seconds, "workers": workers,
                        "photos_per_second": len(paths) / seconds if seconds > 0 else 0.0,
                        "analysis_size": size, "limit": limit})
        files = [photos_csv, *write_tables(stats, summary, out, replace=overwrite)]
        if plots:
            files += write_plots(stats, out, replace=overwrite)
        files.append(write_markdown(summary, out, plots, replace=overwrite))
    except OutputExistsError as error:  # a file that appeared while the photos were analysed
        raise ChromalabError(f"{error.path}: appeared while exploring; kept (use --overwrite to replace it)") from None
    return ExploreResult(stats, summary, out, files, seconds)


# --- Tables (CSV / JSON) ------------------------------------------------------------------


def _write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]], replace: bool = True) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue(), replace=replace)


def write_tables(stats: CollectionStats, summary: dict[str, Any], out: Path, replace: bool = True) -> list[Path]:
    keys = ("channel", "count", "mean", "std", "min", "q25", "median", "q75", "max", "quantiles")
    files = [
        _write_csv(out / "channels.csv", keys, ([row[k] for k in keys] for row in summary["channels"]), replace),
        _write_csv(out / "histogram_rgb.csv", ("value", "R", "G", "B"),
                   ([v, *stats.rgb_hist[:, v].tolist()] for v in range(256)), replace),
        _write_csv(out / "histogram_lab.csv", ("channel", "low", "high", "count"),
                   ([name, float(edges[i]), float(edges[i + 1]), int(stats.lab_hist[name][i])]
                    for name, edges in LAB_EDGES.items() for i in range(len(edges) - 1)), replace),
        _write_csv(out / "histogram_ab.csv", ("a_low", "b_low", "count"),
                   ([-128 + 2 * i, -128 + 2 * j, int(stats.ab_plane[i, j])]
                    for i, j in zip(*np.nonzero(stats.ab_plane))), replace),
        _write_csv(out / "histogram_colorfulness.csv", ("low", "high", "photos"),
                   ([float(COLORFULNESS_EDGES[i]), float(COLORFULNESS_EDGES[i + 1]), int(c)]
                    for i, c in enumerate(stats.colorfulness_hist)), replace),
        _write_csv(out / "sizes.csv", ("dimension", "pixels", "photos"),
                   [*(["width", w, c] for w, c in sorted(stats.widths.items())),
                    *(["height", h, c] for h, c in sorted(stats.heights.items()))], replace),
    ]
    stats_json = out / "stats.json"
    write_text_atomic(stats_json, json.dumps(summary, indent=2, default=float), replace=replace)
    return [*files, stats_json]


# --- Plots (matplotlib, Agg) --------------------------------------------------------------


def _figure(*args: Any, **kwargs: Any):
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt, plt.subplots(*args, **kwargs)


def ab_plane_colors(lightness: float = 65.0) -> np.ndarray:
    """(bins, bins, 3) float sRGB of each ab cell at the given L* (out-of-gamut clipped)."""
    import cv2

    centers = np.linspace(-127.0, 127.0, AB_PLANE_BINS, dtype=np.float32)
    a, b = np.meshgrid(centers, centers, indexing="ij")
    lab = np.stack([np.full_like(a, lightness), a, b], axis=-1)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)


def write_plots(stats: CollectionStats, out: Path, replace: bool = True) -> list[Path]:
    files: list[Path] = []
    plt, (fig, ax) = _figure(figsize=(7, 3.5))
    for channel, color in enumerate(("tab:red", "tab:green", "tab:blue")):
        ax.plot(np.arange(256), stats.rgb_hist[channel] / max(stats.pixels, 1), color=color, label="RGB"[channel])
    ax.set(xlabel="value", ylabel="share of pixels", title="RGB histograms", xlim=(0, 255))
    ax.legend()
    files.append(_save(plt, fig, out / "histogram_rgb.png", replace))

    plt, (fig, axes) = _figure(1, 3, figsize=(12, 3.5))
    for ax, (name, edges) in zip(axes, LAB_EDGES.items()):
        counts = stats.lab_hist[name]
        # stairs: one artist, where bar() would make one rectangle per bin (slow to lay out).
        ax.stairs(counts / max(counts.sum(), 1), edges, fill=True, color="0.3")
        ax.set(xlabel=f"{name}*", title=f"{name}* histogram", xlim=(edges[0], edges[-1]))
        if name != "L":
            ax.set_yscale("log")
    axes[0].set_ylabel("share of pixels")
    files.append(_save(plt, fig, out / "histogram_lab.png", replace))

    # The ab plane: log density, once as a heat map and once tinted with the colors it counts.
    plt, (fig, (left, right)) = _figure(1, 2, figsize=(11, 5))
    density = np.log10(1.0 + stats.ab_plane.astype(np.float64))
    extent = (-128, 128, -128, 128)
    image = left.imshow(density.T, origin="lower", extent=extent, cmap="magma")
    fig.colorbar(image, ax=left, label="log10(1 + pixels)")
    shade = density / max(density.max(), 1e-9)
    right.imshow(np.transpose(ab_plane_colors() * shade[..., None], (1, 0, 2)), origin="lower", extent=extent)
    for ax, title in ((left, "a*b* log density"), (right, "a*b* log density, in its colors")):
        for radius in (20, 40, 80):
            ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="0.6", lw=0.6, ls="--"))
        ax.axhline(0, color="0.6", lw=0.5)
        ax.axvline(0, color="0.6", lw=0.5)
        ax.set(xlabel="a* (green - red)", ylabel="b* (blue - yellow)", title=title)
    files.append(_save(plt, fig, out / "ab_density.png", replace))

    plt, (fig, axes) = _figure(1, 3, figsize=(13, 3.8))
    for ax, counter, label in ((axes[0], stats.widths, "width"), (axes[1], stats.heights, "height")):
        if counter:
            values = np.array(list(counter.keys()))
            weights = np.array(list(counter.values()))
            ax.hist(values, bins=min(60, max(5, len(counter))), weights=weights, color="0.3")
        ax.set(xlabel=f"{label} (px)", ylabel="photos", title=f"{label}s")
    if stats.size_grid:
        from matplotlib.colors import LogNorm

        cells = np.array(list(stats.size_grid.keys()), dtype=np.float64) * SIZE_BIN
        counts = np.array(list(stats.size_grid.values()), dtype=np.float64)
        edges = [np.arange(cells[:, i].min(), cells[:, i].max() + 2 * SIZE_BIN, SIZE_BIN) for i in (0, 1)]
        *_, mesh = axes[2].hist2d(cells[:, 0], cells[:, 1], bins=edges, weights=counts, norm=LogNorm(),
                                  cmap="viridis")
        fig.colorbar(mesh, ax=axes[2], label=f"photos per {SIZE_BIN} px cell")
    axes[2].set(xlabel="width (px)", ylabel="height (px)", title="width x height")
    files.append(_save(plt, fig, out / "sizes.png", replace))

    plt, (fig, ax) = _figure(figsize=(7, 3.5))
    ax.stairs(stats.colorfulness_hist, COLORFULNESS_EDGES, fill=True, color="0.3")
    for name, bound in COLORFULNESS_CATEGORIES[1:]:
        ax.axvline(bound, color="tab:orange", lw=0.8, ls="--")
        ax.text(bound + 1, ax.get_ylim()[1] * 0.95, name, rotation=90, va="top", fontsize=7, color="tab:orange",
                bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1})
    ax.set(xlabel="colorfulness M (Hasler & Suesstrunk 2003)", ylabel="photos", title="colorfulness per photo",
           xlim=(0, COLORFULNESS_EDGES[-1]))
    files.append(_save(plt, fig, out / "colorfulness.png", replace))
    return files


def _save(plt: Any, fig: Any, path: Path, replace: bool = True) -> Path:
    fig.tight_layout()
    try:
        with atomic_target(path, replace=replace) as temporary:
            fig.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path


# --- The Markdown report ------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def write_markdown(summary: dict[str, Any], out: Path, plots: bool = True, replace: bool = True) -> Path:
    lines = [
        f"# Photo collection: {summary['root']}",
        "",
        f"{summary['photos']:,} photos analysed, {summary['unreadable']:,} unreadable; "
        f"{summary['monochrome']:,} monochrome ({100 * summary['monochrome_fraction']:.1f}%). "
        f"Each photo was analysed at {summary['analysis_size']} px on its longer side "
        f"({summary['analysed_pixels']:,} pixels in all); widths and heights are the stored sizes. "
        f"{summary['seconds']:.1f} s with {summary['workers']} worker processes "
        f"({summary['photos_per_second']:.0f} photos/s).",
        "",
        "## Channels",
        "",
        "RGB values are 0..255 (quartiles exact); L* is 0..100 and a*, b* about -128..127 "
        "(CIELAB D65 via OpenCV; quartiles from 1-unit histogram bins, so within 1 unit). "
        "std is the population standard deviation over all pixels.",
        "",
        "| channel | count | mean | std | min | 25% | median | 75% | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["channels"]:
        cells = [row[k] for k in ("channel", "count", "mean", "std", "min", "q25", "median", "q75", "max")]
        lines.append("| " + " | ".join(_number(c) for c in cells) + " |")
    chroma = summary["chroma_share_below"]
    lines += [
        "",
        "## Color",
        "",
        "Share of all pixels whose chroma C*ab is below 5 / 10 / 20 / 40: "
        + " / ".join(f"{100 * chroma[k]:.1f}%" for k in ("5", "10", "20", "40"))
        + ". The mass near the neutral axis is what pulls a regression model's average "
        "prediction toward gray.",
        "",
    ]
    if plots:
        lines += ["![a*b* density](ab_density.png)", "", "![RGB histograms](histogram_rgb.png)", "",
                  "![Lab histograms](histogram_lab.png)", ""]
    c = summary["colorfulness"]
    lines += [
        "## Colorfulness",
        "",
        f"Hasler & Suesstrunk (2003) M per photo: mean {c['mean']:.1f} (std {c['std']:.1f}), "
        f"quartiles {c['q25']:.1f} / {c['median']:.1f} / {c['q75']:.1f} (1-unit bins).",
        "",
        "| category | photos |",
        "|---|---:|",
        *(f"| {name} | {count:,} |" for name, count in c["categories"].items()),
        "",
    ]
    if plots:
        lines += ["![colorfulness](colorfulness.png)", ""]
    lines += ["## Sizes", "", "| | min | 25% | median | 75% | max | mean |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key in ("width", "height"):
        if summary[key]:
            s = summary[key]
            cells = (_number(s[k]) for k in ("min", "q25", "median", "q75", "max", "mean"))
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if plots:
        lines += ["", "![sizes](sizes.png)"]
    if summary["unreadable_files"]:
        lines += ["", "## Unreadable files", ""]
        lines += [f"- `{e['path']}`: {e['reason']}" for e in summary["unreadable_files"][:50]]
        if summary["unreadable"] > 50:
            lines.append(f"- ... {summary['unreadable'] - 50} more in photos.csv")
    lines += ["", "Per-photo numbers: photos.csv. All tables: stats.json and the CSV files beside this report.", ""]
    return write_text_atomic(out / "report.md", "\n".join(lines), replace=replace)
