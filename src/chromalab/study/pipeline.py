"""``run_study``: train every entry, score them together, write the table, sheet and plot.

What it leaves in the study's folder (OUT):

* ``runs/<entry>/`` — each entry's run folder (as ``chromalab train`` makes them) and its
  ``clock.csv`` (training seconds per step);
* ``results.md`` / ``results.csv`` — the table (best per column in bold; ``best`` in CSV);
* ``grid.png`` — gray | every entry | truth on the same 8 evaluation photos;
  ``per_image.csv`` — every entry's scores per photo;
* ``fid_vs_time.png`` / ``curve.csv`` — FID of every snapshot against training time
  (``<metric>_vs_time.png`` when the study file's ``curve.metric`` is another metric);
* ``study.log`` — what happened, run after run; ``study.json`` — the record of all this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from chromalab.atomic import write_text_atomic
from chromalab.study.curve import plot_curves, score_curves
from chromalab.study.record import StudyRecord
from chromalab.study.results import (
    Scores, csv_table, evaluation_signature, markdown_table, score_entries, table_rows,
)
from chromalab.study.runner import check_entries, run_dir, train_entries
from chromalab.study.spec import Study

OUTPUTS = ["results.md", "results.csv", "per_image.csv", "grid.png", "curve.csv", "study.log"]


def curve_plot_name(study: Study) -> str:
    return f"{study.spec.curve.metric}_vs_time.png"


@dataclass
class StudyOutcome:
    finished: list[str]
    failed: dict[str, str]
    written: list[Path] = field(default_factory=list)
    scores: Scores | None = None
    evaluated: bool = False  # False: the table reused the scores of an earlier run


class StudyLog:
    """Progress lines: printed, and appended to OUT/study.log with the time."""

    def __init__(self, path: Path, echo: Callable[[str], None] = print) -> None:
        self.path = path
        self.echo = echo

    def __call__(self, line: str) -> None:
        self.echo(line)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def open_record(study: Study, out: Path, overwrite: bool = False) -> StudyRecord:
    """The study folder's record, after every check that must pass before training starts."""
    record = StudyRecord.open(out)
    record.check_outputs([*OUTPUTS, curve_plot_name(study)], overwrite)
    check_entries(study, record)
    return record


def run_study(study: Study, record: StudyRecord, progress: bool = True,
              echo: Callable[[str], None] = print) -> StudyOutcome:
    out = record.out
    log = StudyLog(record.wrote(out / "study.log"), echo)
    record.save()  # makes OUT, and records study.log as the study's before its first line
    log(f"study {study.name}: {len(study.entries)} entries, {study.describe_budget()}, "
        f"{study.spec.size} px, seed {study.spec.seed} -> {out}")
    training = train_entries(study, record, log)
    runs = {name: run_dir(out, entry) for entry in study.entries
            if (name := entry.name) in training.finished}
    outcome = StudyOutcome(training.finished, training.failed)
    if runs:
        outcome.scores, outcome.evaluated = _scores(study, record, runs, progress, log)
    if outcome.evaluated and outcome.scores is not None:
        outcome.written += _write_evaluation_files(outcome.scores, record)
    rows = table_rows(study, record.entries, outcome.scores, out)
    outcome.written.append(_write(record, out / "results.md", markdown_table(study, rows, outcome.scores)))
    outcome.written.append(_write(record, out / "results.csv", csv_table(rows)))
    if runs:
        outcome.written += _curves(study, record, runs, progress, log)
    record.save()
    log(f"study {study.name}: {len(training.finished)}/{len(study.entries)} entries finished"
        + (f", {len(training.failed)} failed ({', '.join(training.failed)})" if training.failed else "")
        + f"; table {out / 'results.md'}")
    return outcome


def _write(record: StudyRecord, path: Path, text: str) -> Path:
    return record.wrote(write_text_atomic(path, text))


def _scores(study: Study, record: StudyRecord, runs: dict[str, Path], progress: bool,
            log: Callable[[str], None]) -> tuple[Scores, bool]:
    """Score the finished entries, or reuse the last scores when nothing they depend on changed."""
    signature = evaluation_signature(study, {name: folder / "model.safetensors" for name, folder in runs.items()})
    kept = record.evaluation
    if kept.get("signature") == signature and (record.out / "grid.png").is_file():
        log("evaluation: no entry changed since the last one; the table reuses its scores")
        return Scores(kept["summaries"], kept["parameters"], settings=kept.get("settings", {}),
                      notes=kept.get("notes", [])), False
    log(f"evaluation: {len(runs)} entries on {len(study.eval_photos)} photos of {study.eval_data} "
        f"at {study.eval_size} px")
    scores = score_entries(study, runs, progress)
    record.evaluation = {"signature": signature, "summaries": scores.summaries, "parameters": scores.parameters,
                         "settings": scores.settings, "notes": scores.notes}
    record.save()
    return scores, True


def _write_evaluation_files(scores: Scores, record: StudyRecord) -> list[Path]:
    from chromalab.data.images import save_image_atomic
    from chromalab.evaluation.report import per_image_csv, sample_sheet

    out = record.out
    written = [_write(record, out / "per_image.csv", per_image_csv(scores.results))]
    if scores.results[0].samples.gray:
        save_image_atomic(sample_sheet(scores.results), out / "grid.png", overwrite=True)
        written.append(record.wrote(out / "grid.png"))
    return written


def _curves(study: Study, record: StudyRecord, runs: dict[str, Path], progress: bool,
            log: Callable[[str], None]) -> list[Path]:
    photos = study.curve_photos()
    cache = record.wrote(record.out / "curve.csv")
    record.save()  # curve.csv is ours from its first row on
    metric = study.spec.curve.metric
    points = score_curves(runs, photos, study.eval_size, metric, cache, progress, log)
    written = [cache] if points else []
    plot = plot_curves(points, metric, record.out / curve_plot_name(study), len(photos))
    if plot is not None:
        written.append(record.wrote(plot))
    return written
