"""Several models on the same photos: one table, one side-by-side grid, overlaid training curves.

Models are named by run folder, model file or shipped name (anything ``Colorizer.load``
takes). All of them (and optionally the baselines) are scored in a single pass over the
photos by ``evaluate_models``, so the ground truth's Inception and VGG features are computed
once for everyone.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from chromalab.atomic import OutputExistsError, atomic_target
from chromalab.checkpoint import SHIPPED_MODELS, resolve_model_path
from chromalab.errors import ChromalabError
from chromalab.evaluation.baselines import make_baselines
from chromalab.evaluation.evaluate import EvaluationResult, evaluate_models
from chromalab.evaluation.report import (
    check_outputs_free,
    markdown_report,
    per_image_csv,
    report_json,
    sample_sheet,
    summary_csv,
    write_text_atomic,
)

COMPARE_FILES = ("metrics.md", "metrics.csv", "metrics.json", "per_image.csv", "grid.png", "curves.png")
GENERIC_STEMS = {"model", "best", "last"}  # file names that say nothing about which run it is
TRAIN_LOSS_COLUMNS = ("train/total", "train/loss")
VAL_LOSS_COLUMN = "val/loss"


@dataclass
class Comparison:
    results: list[EvaluationResult]
    run_dirs: dict[str, Path] = field(default_factory=dict)  # model label -> its run folder


def find_run_dir(spec: str, model_file: Path) -> Path | None:
    """The training run folder a model comes from (the one holding logs/metrics.csv), if any."""
    candidates = [Path(spec)] if Path(spec).is_dir() else []
    candidates += [model_file.parent, model_file.parent.parent]
    for folder in candidates:
        if (folder / "logs" / "metrics.csv").is_file():
            return folder
    return None


def model_label(spec: str, model_file: Path) -> str:
    if spec in SHIPPED_MODELS:
        return spec
    path = Path(spec)
    if path.is_dir():
        return path.resolve().name
    if path.stem in GENERIC_STEMS:
        run = find_run_dir(spec, model_file)
        parent = (run or path.resolve().parent).name
        return f"{parent}/{path.stem}"
    return path.stem


def _unique(label: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    if label not in taken:
        return label
    n = 2
    while f"{label}-{n}" in taken:
        n += 1
    return f"{label}-{n}"


def load_models(specs: Sequence[str]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Model specs -> (label -> Colorizer, label -> run folder with logs)."""
    from chromalab.inference.colorizer import Colorizer

    colorizers: dict[str, Any] = {}
    run_dirs: dict[str, Path] = {}
    for spec in specs:
        model_file = resolve_model_path(spec)
        label = _unique(model_label(spec, model_file), colorizers)
        colorizers[label] = Colorizer.load(spec)
        run = find_run_dir(spec, model_file)
        if run is not None:
            run_dirs[label] = run
    return colorizers, run_dirs


def compare(
    models: Sequence[str],
    data: str | Path | Sequence[str | Path],
    size: int = 256,
    limit: int | None = None,
    batch_size: int = 16,
    baselines: bool = False,
    metrics: Iterable[str] | None = None,
    progress: bool = True,
    device: str | None = None,
    on_error: Callable[[str], None] | None = None,
    reference_cache: bool | None = None,
    points: int = 0,
    damage: bool = False,
) -> Comparison:
    if not models:
        raise ChromalabError("compare needs at least one model")
    colorizers, run_dirs = load_models(models)
    if baselines:
        for name, baseline in make_baselines().items():
            colorizers[_unique(name, colorizers)] = baseline
    results = evaluate_models(colorizers, data, size=size, limit=limit, batch_size=batch_size,
                              metrics=metrics, progress=progress, device=device, on_error=on_error,
                              reference_cache=reference_cache, points=points, damage=damage)
    return Comparison(results, run_dirs)


# --- training curves -------------------------------------------------------------------------


def read_training_curves(run_dir: Path) -> dict[str, tuple[list[float], list[float]]]:
    """{'train': (steps, losses), 'val': (steps, losses)} from a run's logs/metrics.csv."""
    path = run_dir / "logs" / "metrics.csv"
    try:
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
    except OSError as error:
        raise ChromalabError(f"{path}: cannot read ({error.strerror})") from None
    columns = rows[0].keys() if rows else []
    train_column = next((c for c in TRAIN_LOSS_COLUMNS if c in columns),
                        next((c for c in columns if c.startswith("train/")), None))
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for key, column in (("train", train_column), ("val", VAL_LOSS_COLUMN)):
        if column is None or column not in columns:
            continue
        points = [(float(row["step"]), float(row[column])) for row in rows
                  if row.get(column) not in (None, "") and row.get("step") not in (None, "")]
        points = [(s, v) for s, v in points if math.isfinite(v)]
        if points:
            curves[key] = ([s for s, _ in points], [v for _, v in points])
    return curves


def plot_training_curves(run_dirs: dict[str, Path], path: Path, overwrite: bool = False) -> Path | None:
    """Train loss and val/loss vs step, one line per run, two panels; None if no run has logs."""
    curves = {label: read_training_curves(run) for label, run in run_dirs.items()}
    curves = {label: c for label, c in curves.items() if c}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for axis, key, title in ((axes[0], "train", "training loss"), (axes[1], "val", "validation loss (val/loss)")):
        for label, runs in curves.items():
            if key in runs:
                steps, values = runs[key]
                axis.plot(steps, values, label=label, marker="o" if len(steps) < 20 else None, markersize=3)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_ylabel("loss")
        axis.grid(alpha=0.3)
        if axis.has_data():
            axis.legend(fontsize=8)
    try:
        with atomic_target(path, replace=overwrite) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    except OutputExistsError:
        raise ChromalabError(f"{path}: exists (use --overwrite or another --out)") from None
    finally:
        plt.close(figure)
    return path


# --- writing ---------------------------------------------------------------------------------


def write_comparison(comparison: Comparison, out_dir: str | Path, overwrite: bool = False) -> dict[str, Path]:
    """metrics.md/.csv/.json (best per column in bold), per_image.csv, grid.png, curves.png."""
    from chromalab.data.images import save_image_atomic

    out = Path(out_dir)
    check_outputs_free(out, COMPARE_FILES, overwrite)
    results = comparison.results
    written = {
        "markdown": write_text_atomic(out / "metrics.md", markdown_report(results, "Comparison"), overwrite),
        "csv": write_text_atomic(out / "metrics.csv", summary_csv(results), overwrite),
        "json": write_text_atomic(out / "metrics.json", report_json(results), overwrite),
        "per_image": write_text_atomic(out / "per_image.csv", per_image_csv(results), overwrite),
    }
    if results[0].samples.gray:
        save_image_atomic(sample_sheet(results), out / "grid.png", overwrite=overwrite)
        written["grid"] = out / "grid.png"
    curves = plot_training_curves(comparison.run_dirs, out / "curves.png", overwrite)
    if curves is not None:
        written["curves"] = curves
    return written
