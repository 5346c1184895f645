"""Scoring a study's finished entries on one evaluation set, and its table.

The scoring is ``chromalab compare``'s: the entries' models are loaded as compare loads
them and scored together by :func:`~chromalab.evaluation.evaluate.evaluate_models` (the
ground truth's features computed once), and the sample sheet is compare's grid (gray | each
entry | truth, on the same 8 photos). The table adds what a comparison of training recipes
needs beside the metrics: parameters, training and inference speed, training time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chromalab.evaluation.metrics import METRICS, best_index
from chromalab.evaluation.report import ARROWS, format_value
from chromalab.study.callbacks import read_clock
from chromalab.study.spec import Study

# (key, header, direction) of the table's columns after the entry's name; directions as in
# chromalab.evaluation.metrics.METRICS ("none": context, never bold).
COLUMNS: list[tuple[str, str, str]] = [
    ("fid", "FID", "lower"),
    ("colorfulness", "colorfulness", "higher"),
    ("delta_colorfulness", "Δ colorfulness", "zero"),
    ("psnr", "PSNR", "higher"),
    ("ssim", "SSIM", "higher"),
    ("ssim_ab", "SSIM ab", "higher"),
    ("ciede2000", "CIEDE2000", "lower"),
    ("lpips", "LPIPS", "lower"),
    ("delta_l", "\\|ΔL*\\|", "lower"),
    ("parameters", "params (M)", "none"),
    ("train_images_per_s", "train img/s", "higher"),
    ("images_per_s", "infer img/s", "higher"),
    ("train_minutes", "train min", "none"),
]
DECIMALS = {"parameters": 2, "train_images_per_s": 1, "train_minutes": 1}


@dataclass
class EntryRow:
    """One line of the table: an entry's state and numbers (None: not measured)."""

    name: str
    config: str
    status: str
    values: dict[str, float | None] = field(default_factory=dict)
    note: str = ""
    run: str = ""


# --- what the runs' own files say ----------------------------------------------------------------


def training_throughput(run_dir: Path) -> float | None:
    """Training images/s from ``logs/metrics.csv``: each epoch's last ``img/s`` (the epoch's
    average so far, as the Throughput callback logs it), averaged over the epochs."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        return None
    last: dict[str, float] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            text = row.get("img/s") or ""
            if text:
                last[row.get("epoch") or ""] = float(text)
    values = [v for v in last.values() if math.isfinite(v)]
    return statistics.fmean(values) if values else None


def training_minutes(run_dir: Path) -> float | None:
    clock = read_clock(run_dir)
    return clock[-1][1] / 60 if clock else None


def model_signature(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def evaluation_signature(study: Study, models: dict[str, Path]) -> dict[str, Any]:
    """What the table's numbers depend on: the photos, the protocol and each model file."""
    photos = hashlib.sha1("\n".join(str(p) for p in study.eval_photos).encode()).hexdigest()
    return {
        "photos": photos, "count": len(study.eval_photos), "size": study.eval_size,
        "metrics": study.spec.eval.metrics,
        "models": {name: model_signature(path) for name, path in models.items()},
    }


# --- scoring -------------------------------------------------------------------------------------


@dataclass
class Scores:
    """The evaluation of the finished entries: summaries, and what the report files need."""

    summaries: dict[str, dict[str, float]]
    parameters: dict[str, int]
    results: list[Any] = field(default_factory=list)  # EvaluationResult, for the grid and per-image CSV
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def score_entries(study: Study, runs: dict[str, Path], progress: bool) -> Scores:
    """Score every finished entry's model on the study's evaluation photos in one pass."""
    from chromalab.evaluation.compare import load_models
    from chromalab.evaluation.evaluate import evaluate_models
    from chromalab.models.registry import count_parameters

    loaded, _ = load_models([str(folder) for folder in runs.values()])
    # compare labels a run folder by its name, which is the entry's name.
    colorizers = dict(zip(runs, loaded.values()))
    evaluation = study.spec.eval
    results = evaluate_models(colorizers, [str(p) for p in study.eval_photos], size=study.eval_size,
                              batch_size=evaluation.batch_size, metrics=evaluation.metrics, progress=progress)
    notes = list(dict.fromkeys(note for result in results for note in result.notes))
    return Scores(
        summaries={r.name: dict(r.summary) for r in results},
        parameters={name: count_parameters(c.net) for name, c in colorizers.items()},
        results=results, settings={"images": results[0].settings["images"]}, notes=notes,
    )


# --- the table -----------------------------------------------------------------------------------


def table_rows(study: Study, record_entries: dict[str, dict[str, Any]], scores: Scores | None,
               out: Path) -> list[EntryRow]:
    rows = []
    for entry in study.entries:
        state = record_entries.get(entry.name, {})
        folder = out / "runs" / entry.name
        status = state.get("status") or "not run"
        row = EntryRow(entry.name, entry.config_path.name, status, run=f"runs/{entry.name}")
        overrides = ", ".join(f"{k}={v}" for k, v in entry.overrides.items())
        row.note = state.get("error") or ""
        if overrides:
            row.note = f"set {overrides}" + (f"; {row.note}" if row.note else "")
        summary = (scores.summaries.get(entry.name) if scores else None) or {}
        row.values = {key: summary.get(key) for key, _, _ in COLUMNS if key in METRICS}
        parameters = scores.parameters.get(entry.name) if scores else None
        row.values["parameters"] = parameters / 1e6 if parameters else None
        row.values["train_images_per_s"] = training_throughput(folder)
        row.values["train_minutes"] = training_minutes(folder)
        if summary.get("colorfulness_truth") is not None:
            row.values["colorfulness_truth"] = summary["colorfulness_truth"]
        rows.append(row)
    return rows


def best_rows(rows: list[EntryRow]) -> dict[str, int | None]:
    """Per column, the row with the best value (only among 2+ scored entries)."""
    best: dict[str, int | None] = {}
    for key, _, direction in COLUMNS:
        values = [r.values.get(key) for r in rows]
        scored = [v for v in values if v is not None and math.isfinite(v)]
        if direction == "none" or len(scored) < 2:
            best[key] = None
            continue
        if key in METRICS:
            best[key] = best_index(key, [math.nan if v is None else v for v in values])
        else:  # train img/s: higher is better; the first of equal values
            candidates = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
            best[key] = max(candidates, key=lambda c: (c[0], -c[1]))[1]
    return best


def _format(key: str, value: float | None) -> str:
    if key in DECIMALS and value is not None and math.isfinite(value):
        return f"{value:.{DECIMALS[key]}f}"
    return format_value(key, value)


def present_columns(rows: list[EntryRow]) -> list[tuple[str, str, str]]:
    """The columns with a value in some row (LPIPS, say, needs its optional extra)."""
    return [c for c in COLUMNS if c[0] not in METRICS or any(r.values.get(c[0]) is not None for r in rows)]


def markdown_table(study: Study, rows: list[EntryRow], scores: Scores | None) -> str:
    columns = present_columns(rows)
    best = best_rows(rows)
    header = ["entry", "config"] + [f"{title} {ARROWS[direction]}".strip() for _, title, direction in columns] + ["status"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * len(columns) + "---|"]
    for index, row in enumerate(rows):
        cells = [row.name, row.config]
        for key, _, _ in columns:
            text = _format(key, row.values.get(key))
            cells.append(f"**{text}**" if best.get(key) == index else text)
        status = row.status if not row.note else f"{row.status}: {row.note}"
        cells.append(status.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    spec = study.spec
    truth = next((r.values["colorfulness_truth"] for r in rows if r.values.get("colorfulness_truth") is not None), None)
    settings = scores.settings if scores else {}
    intro = [
        f"# Study {study.name}",
        "",
        f"Study file `{study.path}`. Each entry trained on `{study.data}` at {spec.size} px, seed {spec.seed}, "
        f"for {study.describe_budget()}.",
        f"Scored on {settings.get('images', len(study.eval_photos))} photos of `{study.eval_data}`"
        + (f" ({spec.eval.limit} spread evenly over the folder's sorted list)" if spec.eval.limit else "")
        + f" at {study.eval_size} px" + (f"; colorfulness of the true photos {truth:.2f}" if truth is not None else "")
        + ".",
        "",
    ]
    legend = [
        "",
        "↓ lower is better, ↑ higher is better, →0 closest to zero is best; best value in **bold**. "
        "Δ colorfulness: the outputs' colorfulness minus the true photos'. train img/s: from the run's "
        "logs/metrics.csv; infer img/s: colorizing the evaluation photos; train min: wall clock of "
        "training (validation included).",
    ]
    notes = scores.notes if scores else []
    if notes:
        legend += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(intro + lines + legend) + "\n"


def csv_table(rows: list[EntryRow]) -> str:
    """Full precision; ``best`` lists the columns where the entry is best (the Markdown bold)."""
    best = best_rows(rows)
    keys = [key for key, _, _ in COLUMNS]
    keys.insert(keys.index("delta_colorfulness"), "colorfulness_truth")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["entry", "config", "status", *keys, "best", "note", "run"])
    for index, row in enumerate(rows):
        values = [row.values.get(key) for key in keys]
        cells = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}" for v in values]
        best_in = ";".join(key for key, i in best.items() if i == index)
        writer.writerow([row.name, row.config, row.status, *cells, best_in, row.note, row.run])
    return buffer.getvalue()
