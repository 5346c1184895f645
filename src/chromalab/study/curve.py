"""FID against training time: every entry's weight snapshots, scored on the same photos.

The points of an entry are its snapshots (``checkpoints/stepNNNNNN.ckpt``, weight-only, from
the study's every-N-minutes clock or ``trainer.snapshot_every_steps``) and its final weights
(``last.ckpt``, written when training ends), each placed at the training seconds its
``clock.csv`` gives for its step. The final weights, not ``model.safetensors``: for a
regression model that file holds the best validation checkpoint, which belongs at an earlier
time. Each point's score is kept in ``curve.csv`` with the file's size and modification
time, so a re-run scores only new snapshots. The metric is FID unless the study file says
otherwise (``curve.metric``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from chromalab.atomic import atomic_target, write_text_atomic
from chromalab.study.callbacks import read_clock, seconds_at
from chromalab.study.results import model_signature

SNAPSHOT = re.compile(r"step(\d+)\.ckpt")
FINAL = "last.ckpt"
FIELDS = ["entry", "point", "step", "minutes", "metric", "value", "signature"]


@dataclass
class CurvePoint:
    entry: str
    point: str  # the checkpoint's file name
    path: Path
    step: int
    minutes: float
    value: float | None = None

    @property
    def signature(self) -> str:
        return model_signature(self.path)


def curve_points(entry: str, run_dir: Path) -> list[CurvePoint]:
    """An entry's snapshots and final weights, each at its training time (a run trained
    without the study's clock has none)."""
    clock = read_clock(run_dir)
    if not clock:
        return []
    points = []
    for path in sorted((run_dir / "checkpoints").glob("step*.ckpt")):
        match = SNAPSHOT.fullmatch(path.name)
        seconds = seconds_at(clock, int(match.group(1))) if match else None
        if seconds is not None:
            points.append(CurvePoint(entry, path.name, path, int(match.group(1)), seconds / 60))  # type: ignore[union-attr]
    final = run_dir / "checkpoints" / FINAL
    step, seconds = clock[-1]
    if final.is_file() and all(p.step != step for p in points):  # else a snapshot holds them already
        points.append(CurvePoint(entry, FINAL, final, step, seconds / 60))
    return points


def read_cache(path: Path) -> dict[tuple[str, str, str, str], float]:
    """(entry, point, metric, signature) -> the score an earlier run measured."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {(row["entry"], row["point"], row["metric"], row["signature"]): float(row["value"])
                for row in csv.DictReader(handle) if row.get("value")}


def write_curve_csv(points: list[CurvePoint], metric: str, path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for p in points:
        value = "" if p.value is None else f"{p.value:.6g}"
        writer.writerow([p.entry, p.point, p.step, f"{p.minutes:.3f}", metric, value, p.signature])
    return write_text_atomic(path, buffer.getvalue())


def score_curves(
    runs: dict[str, Path], photos: list[Path], size: int, metric: str, cache_path: Path, progress: bool,
    log_line: Callable[[str], None] = print,
) -> list[CurvePoint]:
    """``metric`` of every point on ``photos``; the cache is updated after each entry."""
    from chromalab.evaluation.evaluate import evaluate_models
    from chromalab.inference.colorizer import Colorizer

    cache = read_cache(cache_path)
    points = {entry: curve_points(entry, folder) for entry, folder in runs.items()}
    everything = [p for entry_points in points.values() for p in entry_points]
    for entry, entry_points in points.items():
        for point in entry_points:
            point.value = cache.get((entry, point.point, metric, point.signature))
        todo = [p for p in entry_points if p.value is None]
        if not todo:
            continue
        log_line(f"curve: {metric} of {len(todo)} checkpoint(s) of {entry} on {len(photos)} photos")
        colorizers = {p.point: Colorizer.load(p.path) for p in todo}
        results = evaluate_models(colorizers, [str(p) for p in photos], size=size, metrics=[metric],
                                  progress=progress)
        for point, result in zip(todo, results):
            point.value = result.summary.get(metric)
        write_curve_csv(everything, metric, cache_path)
    if everything:
        write_curve_csv(everything, metric, cache_path)
    return everything


def plot_curves(points: list[CurvePoint], metric: str, path: Path, photos: int) -> Path | None:
    """``metric`` against training minutes, a line per entry; None when there is no point."""
    from chromalab.evaluation.metrics import METRICS

    scored = [p for p in points if p.value is not None]
    if not scored:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    entries = list(dict.fromkeys(p.entry for p in scored))
    colors = plt.get_cmap("tab20" if len(entries) > 10 else "tab10")
    for index, entry in enumerate(entries):
        line = sorted((p for p in scored if p.entry == entry), key=lambda p: p.minutes)
        axis.plot([p.minutes for p in line], [p.value for p in line], marker="o", markersize=4, label=entry,
                  color=colors(index % colors.N))
    better = {"lower": " (lower is better)", "higher": " (higher is better)", "zero": " (0 is best)"}
    name = "FID" if metric == "fid" else metric
    axis.set_xlabel("training time (minutes, wall clock)")
    axis.set_ylabel(f"{name} on {photos} photos{better.get(METRICS[metric], '')}")
    axis.set_title(f"{name} against training time")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=2 if len(entries) > 8 else 1)
    try:
        with atomic_target(path) as temporary:
            figure.savefig(temporary, format="png", dpi=110)
    finally:
        plt.close(figure)
    return path
