"""What a sweep leaves behind: the trials table, the plots and the best configuration.

* ``trials.csv`` / ``trials.md`` — one row per trial (number, status, parameters, metrics,
  minutes, note); in Markdown the best trial's row is **bold**, in CSV its ``best`` is 1.
* ``metric_vs_params.png`` — the metric against each swept option (Optuna's slice plot).
* ``importance.png`` — parameter importance (Optuna's PED-ANOVA) when there are at least two
  options and enough finished trials for it to mean something; otherwise
  ``parallel_coordinates.png``.
* ``best.yaml`` — the base configuration with the best trial's values, ready for
  ``chromalab train --config best.yaml``.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from chromalab.sweep.outputs import SweepFiles
from chromalab.sweep.scoring import VAL_LOSS, metric_goal
from chromalab.sweep.spec import ParamSpec, apply_params
from chromalab.training.config import TrainConfig

# PED-ANOVA on fewer trials ranks noise; below this the parallel-coordinates plot is drawn.
MIN_TRIALS_FOR_IMPORTANCE = 5


@dataclass
class SweepReport:
    table_csv: Path
    table_md: Path
    plots: list[Path] = field(default_factory=list)
    best_yaml: Path | None = None
    best_trial: FrozenTrial | None = None


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None before any trial has completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def measured(trial: FrozenTrial, metric: str) -> float | None:
    """The trial's metric as measured (the study keeps |value| for closest-to-zero metrics)."""
    return (trial.user_attrs.get("metrics") or {}).get(metric, trial.value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trial_rows(study: optuna.Study, params: list[ParamSpec], metric: str) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (raw values) of the trials table, in trial order."""
    trials = study.get_trials(deepcopy=False)
    other_metrics = sorted({
        name for t in trials for name in (t.user_attrs.get("metrics") or {}) if name != metric
    })
    if metric != VAL_LOSS and VAL_LOSS in other_metrics:  # the free metric first
        other_metrics.remove(VAL_LOSS)
        other_metrics.insert(0, VAL_LOSS)
    header = ["trial", "status", *(p.path for p in params), metric, *other_metrics, "minutes", "note"]
    rows = []
    for trial in trials:
        metrics = trial.user_attrs.get("metrics") or {}
        # The metric as measured (a closest-to-zero metric keeps its sign; the study has |value|).
        value = metrics.get(metric, trial.value if trial.state == TrialState.COMPLETE else None)
        note = trial.user_attrs.get("error", "")
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            note = f"pruned after validation round {max(trial.intermediate_values)}"
        elif trial.user_attrs.get("interrupted"):
            note = "interrupted"
        elif "retry_of" in trial.user_attrs:
            note = f"re-run of trial {trial.user_attrs['retry_of']}"
        rows.append([
            trial.number, trial.state.name.lower(),
            *(trial.params.get(p.path) for p in params),
            value, *(metrics.get(name) for name in other_metrics),
            trial.user_attrs.get("minutes"), note,
        ])
    return header, rows


def write_tables(study: optuna.Study, params: list[ParamSpec], metric: str, out: Path,
                 files: SweepFiles | None = None) -> tuple[Path, Path]:
    files = files or SweepFiles(out)
    header, rows = trial_rows(study, params, metric)
    best = best_trial(study)
    best_number = best.number if best else None
    goal = {"lower": "lower is better", "higher": "higher is better", "zero": "closest to zero is best"}[
        metric_goal(metric)
    ]

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*header, "best", "run_dir"])
    run_dirs = {t.number: t.user_attrs.get("run_dir", "") for t in study.get_trials(deepcopy=False)}
    for row in rows:
        # Full precision here (the Markdown table rounds): the CSV is for further analysis.
        writer.writerow(["" if v is None else v for v in row] + [int(row[0] == best_number), run_dirs[row[0]]])
    csv_path = files.write_text("trials.csv", buffer.getvalue())

    lines = [
        f"# Sweep {study.study_name}: {metric} ({goal})",
        "",
        f"Best: trial {best_number}" if best else "No trial has completed yet.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if h not in ("status", "note") else "---" for h in header) + "|",
    ]
    for row in rows:
        cells = [_cell(v).replace("|", "\\|") for v in row]
        if row[0] == best_number:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    md_path = files.write_text("trials.md", "\n".join(lines) + "\n")
    return csv_path, md_path


def _save(axes: Any, files: SweepFiles, name: str, width: float | None = None) -> Path:
    import matplotlib.pyplot as plt

    figure = np.ravel(axes)[0].figure
    if width and width > figure.get_figwidth():
        figure.set_figwidth(width)  # room for many options; Optuna's colorbar scales along
    try:
        return files.write(name, lambda temporary: figure.savefig(temporary, format="png", dpi=110,
                                                                  bbox_inches="tight"))
    finally:
        plt.close(figure)


def write_plots(study: optuna.Study, params: list[ParamSpec], metric: str, out: Path,
                files: SweepFiles | None = None) -> list[Path]:
    """The metric against each option, and importance (or parallel coordinates)."""
    files = files or SweepFiles(out)
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    names = [p.path for p in params]
    target = f"|{metric}|" if metric_goal(metric) == "zero" else metric  # what the study holds
    written = []
    with warnings.catch_warnings():
        # Optuna marks its matplotlib plots experimental, and matplotlib complains about the
        # flat axis of an option with a single value: neither is news to the user.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        axes = plots.plot_slice(study, params=names, target_name=target)
        written.append(_save(axes, files, "metric_vs_params.png", 3.2 * len(names) + 1))
        if len(names) >= 2 and len(complete) >= MIN_TRIALS_FOR_IMPORTANCE:
            axes = plots.plot_param_importances(study, params=names, target_name=target)
            written.append(_save(axes, files, "importance.png"))
        else:
            axes = plots.plot_parallel_coordinate(study, params=names, target_name=target)
            written.append(_save(axes, files, "parallel_coordinates.png", 2.2 * (len(names) + 1) + 1))
    return written


def write_best_config(
    study: optuna.Study, base: TrainConfig, metric: str, out: Path, files: SweepFiles | None = None
) -> tuple[Path | None, FrozenTrial | None]:
    """``best.yaml``: the base configuration with the best trial's values (None if none yet)."""
    files = files or SweepFiles(out)
    best = best_trial(study)
    if best is None:
        return None, None
    config = apply_params(base, best.params)
    config.out = str(Path("runs") / f"{study.study_name}-best")  # never the trial's own folder
    header = (
        f"# Best trial {best.number} of sweep {study.study_name!r}: {metric} {measured(best, metric):.6g}\n"
        f"# Swept: {', '.join(f'{k}={v}' for k, v in best.params.items())}\n"
        f"# Its run folder: {best.user_attrs.get('run_dir', '?')}\n"
        "# Train it again (longer, on more data): chromalab train --config best.yaml\n"
    )
    return files.write_text("best.yaml", header + config.to_yaml()), best


def write_report(study: optuna.Study, params: list[ParamSpec], metric: str, base: TrainConfig, out: Path,
                 files: SweepFiles | None = None) -> SweepReport:
    """The tables, plots and best.yaml in ``out``; only files the sweep wrote are replaced
    (``files``, see chromalab.sweep.outputs; by default without --overwrite)."""
    files = files or SweepFiles(out)
    csv_path, md_path = write_tables(study, params, metric, out, files)
    plots = write_plots(study, params, metric, out, files)
    best_yaml, best = write_best_config(study, base, metric, out, files)
    return SweepReport(csv_path, md_path, plots, best_yaml, best)
