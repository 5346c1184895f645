"""Scoring a finished trial: its best ``val_loss`` (free) and the evaluation metrics.

``val_loss`` is the lowest ``val/loss`` the run logged (the one its ``best`` checkpoint and
``model.safetensors`` hold), read from ``logs/metrics.csv``. Every other metric comes from
:func:`chromalab.evaluation.evaluate` on held-out photos, run once when the trial has trained.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from chromalab.errors import ChromalabError
from chromalab.training.config import TrainConfig

VAL_LOSS = "val_loss"


def evaluation_metrics() -> dict[str, str]:
    """Evaluation metric name -> "lower" / "higher" / "zero" / "none"; empty without it."""
    try:
        from chromalab.evaluation import METRICS
    except ImportError:
        return {}
    return dict(METRICS)


def metric_goal(metric: str) -> str:
    """"lower", "higher" or "zero" (closest to zero is best), or a one-line error."""
    if metric == VAL_LOSS:
        return "lower"
    known = evaluation_metrics()
    if metric not in known:
        names = ", ".join([VAL_LOSS, *(m for m, goal in known.items() if goal != "none")])
        if not known:
            names += " (the evaluation metrics need chromalab.evaluation, which is missing)"
        raise ChromalabError(f"unknown metric {metric!r}; known: {names}")
    if known[metric] not in ("lower", "higher", "zero"):
        raise ChromalabError(f"metric {metric!r} is context, not a score: it cannot be optimized")
    return known[metric]


def metric_direction(metric: str) -> str:
    """Optuna's direction for a metric: "maximize" for higher-is-better, else "minimize"."""
    return "maximize" if metric_goal(metric) == "higher" else "minimize"


def objective_value(metric: str, value: float) -> float:
    """What the study optimizes: the value itself, or its size for closest-to-zero metrics."""
    return abs(value) if metric_goal(metric) == "zero" else value


def best_val_loss(run_dir: Path) -> float | None:
    """The lowest ``val/loss`` in a run's ``logs/metrics.csv`` (None if it never validated)."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        return None
    values = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            text = row.get("val/loss") or ""
            if text:
                values.append(float(text))
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        return min(finite)
    return values[-1] if values else None  # all NaN: report the divergence as it is


def validation_photos(config: TrainConfig) -> list[Path]:
    """The photos this run's PhotoDataModule held out for validation (same split, same limit)."""
    from chromalab.training.trainer import build_datamodule

    datamodule = build_datamodule(config)
    datamodule.setup("validate")
    return list(datamodule.val_set.paths)  # type: ignore[union-attr]


def evaluate_run(
    run_dir: Path,
    photos: str | Path | list[Path],
    metrics: list[str],
    size: int,
    limit: int | None,
) -> dict[str, Any]:
    """Colorize ``photos`` with the run's model and measure ``metrics`` (evaluation summary)."""
    from chromalab.evaluation import evaluate
    from chromalab.inference.colorizer import Colorizer

    colorizer = Colorizer.load(run_dir)
    source = photos if isinstance(photos, (str, Path)) else [str(p) for p in photos]
    result = evaluate(colorizer, source, size=size, limit=limit, metrics=metrics, progress=False)
    summary = dict(result.summary)
    missing = [m for m in metrics if m not in summary]
    if missing:
        raise ChromalabError(
            f"the evaluation did not compute {', '.join(missing)} (it gave: {', '.join(summary)})"
        )
    return summary
