"""fp32 against bf16 training in the same wall-clock time: one table and one figure from two studies.

    python benchmarks/precision_curves.py studies/precision-fp32 studies/precision-bf16 \
        [--out docs/images/precision-curves.png] [--overwrite]

The two folders are runs of ``configs/studies/precision.yaml`` that differ only in
``trainer.precision`` (each folder's label is the part of its name after the last '-'). For
every model trained in both it reads, per run: the training clock (``clock.csv``: seconds of
training at each step), the validation loss per step (``logs/metrics.csv``), the FID of the
weight snapshots (the study's ``curve.csv``) and the final scores (``results.csv``). It prints
a Markdown table (steps and images reached, images/s, the last validation loss, FID at each
snapshot on the study's curve photos, and the study's scores of the run's model file, the
best-validation checkpoint, on its evaluation photos) and draws validation loss and FID against minutes of training,
a column per model.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from chromalab.errors import ChromalabError
from chromalab.evaluation.compare import read_training_curves
from chromalab.study.callbacks import read_clock, seconds_at


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_summary(study: Path, entry: str) -> dict:
    """One model's run in one study: its clock, validation curve against minutes, FID points."""
    run = study / "runs" / entry
    clock = read_clock(run)
    config = read_rows(study / "results.csv")
    final = next((row for row in config if row["entry"] == entry), {})
    val_steps, val_losses = read_training_curves(run).get("val", ([], []))
    val_minutes = [(seconds_at(clock, int(step)) or 0.0) / 60 for step in val_steps]
    fid = sorted((float(row["minutes"]), float(row["value"])) for row in read_rows(study / "curve.csv")
                 if row["entry"] == entry and row["value"])
    steps, seconds = clock[-1] if clock else (0, 0.0)
    batch = int(_config_value(run / "config.yaml", "batch_size") or 0)
    return {"clock_steps": steps, "seconds": seconds, "images": steps * batch,
            "val": (val_minutes, val_losses), "fid": fid, "final": final}


def _config_value(path: Path, key: str) -> str | None:
    """``key`` from the data section of a run's saved config (a plain read: no validation)."""
    import yaml

    if not path.is_file():
        return None
    return (yaml.safe_load(path.read_text()) or {}).get("data", {}).get(key)


def table(summaries: dict[str, dict[str, dict]]) -> str:
    labels = list(summaries)
    entries = [e for e in summaries[labels[0]] if all(e in summaries[label] for label in labels)]
    snapshot_minutes = sorted({round(m) for label in labels for e in entries for m, _ in summaries[label][e]["fid"]})
    head = ["model", "precision", "steps", "images seen", "img/s", "last val loss",
            *[f"FID @{m} min" for m in snapshot_minutes], "model's FID", "CIEDE2000", "PSNR"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for entry in entries:
        for label in labels:
            s = summaries[label][entry]
            fid_at = {round(m): v for m, v in s["fid"]}
            speed = s["images"] / s["seconds"] if s["seconds"] else 0.0
            last_val = s["val"][1][-1] if s["val"][1] else float("nan")
            final = s["final"]
            cells = [entry, label, f"{s['clock_steps']:,}", f"{s['images']:,}", f"{speed:.1f}", f"{last_val:.4f}",
                     *[f"{fid_at[m]:.2f}" if m in fid_at else "" for m in snapshot_minutes],
                     *[_number(final.get(key)) for key in ("fid", "ciede2000", "psnr")]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(text: str | None) -> str:
    return f"{float(text):.2f}" if text else ""


def plot(summaries: dict[str, dict[str, dict]], path: Path, overwrite: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chromalab.atomic import atomic_target

    labels = list(summaries)
    entries = [e for e in summaries[labels[0]] if all(e in summaries[label] for label in labels)]
    figure, axes = plt.subplots(2, len(entries), figsize=(4.2 * len(entries), 7), squeeze=False,
                                constrained_layout=True)
    for column, entry in enumerate(entries):
        for label, style in zip(labels, ("--", "-", ":", "-.")):
            s = summaries[label][entry]
            axes[0][column].plot(*s["val"], style, label=label)
            if s["fid"]:
                axes[1][column].plot(*zip(*s["fid"]), style, marker="o", markersize=4, label=label)
        axes[0][column].set_title(f"{entry}: validation loss")
        axes[1][column].set_title(f"{entry}: FID of the snapshots, held-out photos")
        for row in (0, 1):
            axes[row][column].set_xlabel("training time (minutes, wall clock)")
            axes[row][column].grid(alpha=0.3)
            if axes[row][column].has_data():
                axes[row][column].legend(fontsize=8)
    try:
        with atomic_target(path, replace=overwrite) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
    finally:
        plt.close(figure)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", type=Path, help="study folders, e.g. studies/precision-fp32")
    parser.add_argument("--out", type=Path, default=Path("docs/images/precision-curves.png"))
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args()
    summaries: dict[str, dict[str, dict]] = {}
    for study in args.studies:
        runs = study / "runs"
        if not runs.is_dir():
            print(f"{study}: no runs/ folder (not a study folder?)", file=sys.stderr)
            return 2
        label = study.name.rsplit("-", 1)[-1]
        summaries[label] = {run.name: run_summary(study, run.name) for run in sorted(runs.iterdir()) if run.is_dir()}
    print(table(summaries))
    try:
        print(f"\nfigure: {plot(summaries, args.out, args.overwrite)}")
    except (ChromalabError, FileExistsError) as error:
        print(f"{args.out}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
