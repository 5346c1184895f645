"""Color points: scores against the number of points, a curve and a sample sheet (docs/points.md).

Every model is evaluated as ``chromalab evaluate --points N`` does it (the evaluation protocol,
N points per photo simulated from the truth, seeded by the photo's name), for each N:

    .venv/bin/python scripts/points_curve.py --data ../shared/data/val/imagenet_det256 \\
        --model "propagation on default=default" --model "guided + propagation=runs/guided" \\
        --model "guided alone=runs/guided:alone" --points 0,1,2,5,10,20,50 --out docs/points

A model is ``LABEL=SPEC`` where SPEC is a model name, file or run folder, ``gray`` (the points
spread over the gray photo), and ``:alone`` turns propagation off (a point-guided network's own
use of the points). Scores are kept in OUT/scores.json: a rerun evaluates only the (model, N)
pairs it lacks. Writes OUT/table.md, OUT/curve.png and OUT/sheet.jpg (gray | automatic | the
points as dots | each model | truth, at the sheet's N).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from chromalab.atomic import write_text_atomic
from chromalab.cli import setup_logging
from chromalab.evaluation.evaluate import EvaluationResult, evaluate_models
from chromalab.evaluation.report import sheet_header
from chromalab.inference.points import ColorPoint

METRICS = ["fid", "colorfulness", "colorfulness_truth", "psnr", "ciede2000"]
SHOWN = [("psnr", "PSNR (dB) ↑"), ("ciede2000", "CIEDE2000 ↓"), ("colorfulness", "colorfulness"), ("fid", "FID ↓")]


def load(spec: str) -> Any:
    from chromalab.evaluation.baselines import GrayBaseline
    from chromalab.inference.colorizer import Colorizer

    if spec == "gray":
        return GrayBaseline()
    alone = spec.endswith(":alone")
    colorizer = Colorizer.load(spec.removesuffix(":alone"))
    colorizer.propagate_points = not alone
    return colorizer


def draw_points(gray: Image.Image, points: list[ColorPoint], source_size: int) -> Image.Image:
    """The gray photo with each point as a dot of its color, outlined for contrast."""
    image = gray.convert("RGB").copy()
    draw = ImageDraw.Draw(image)
    scale = image.width / source_size
    radius = max(2.5, image.width / 64)
    for point in points:
        x, y = (point.x + 0.5) * scale, (point.y + 0.5) * scale
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=point.color, outline="white", width=1)
    return image


def write_sheet(results: dict[str, EvaluationResult], automatic: EvaluationResult, out: Path, count: int,
                source_size: int, rows: int = 6, gap: int = 4) -> Path:
    first = next(iter(results.values())).samples
    labels = ["gray input", "automatic (default)", f"{count} points", *results, "truth"]
    picked = range(min(rows, len(first.gray)))
    grid = [[first.gray[i], automatic.samples.output[i], draw_points(first.gray[i], first.points[i], source_size),
             *(r.samples.output[i] for r in results.values()), first.truth[i]] for i in picked]
    cell = max(image.width for row in grid for image in row)
    header = sheet_header(labels, cell, gap)
    height = header.height + sum(max(im.height for im in row) + gap for row in grid) + gap
    sheet = Image.new("RGB", (header.width, height), "white")
    sheet.paste(header, (0, 0))
    y = header.height
    for row in grid:
        for column, image in enumerate(row):
            sheet.paste(image, (gap + column * (cell + gap), y))
        y += max(im.height for im in row) + gap
    path = out / "sheet.jpg"
    sheet.save(path, quality=88)
    return path


def write_curve(scores: dict[str, dict[str, dict[str, float]]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(SHOWN), figsize=(4.2 * len(SHOWN), 3.6))
    for axis, (metric, title) in zip(axes, SHOWN):
        for label, by_n in scores.items():
            counts = sorted(int(n) for n in by_n)
            axis.plot(counts, [by_n[str(n)][metric] for n in counts], marker="o", label=label)
        if metric == "colorfulness":
            truth = next(iter(next(iter(scores.values())).values())).get("colorfulness_truth")
            if truth:
                axis.axhline(truth, color="gray", linestyle=":", label="truth")
        axis.set_xscale("symlog", linthresh=1)
        axis.set_xlim(left=-0.2)
        axis.set_xlabel("color points per photo")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    path = out / "curve.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_table(scores: dict[str, dict[str, dict[str, float]]], out: Path, base: tuple[float, float] | None) -> Path:
    lines = ["| model | N | PSNR | ΔPSNR | CIEDE2000 | ratio | colorfulness | FID |", "|---|---|---|---|---|---|---|---|"]
    for label, by_n in scores.items():
        for n in sorted(by_n, key=int):
            s = by_n[n]
            gain = f"{s['psnr'] - base[0]:+.2f}" if base else ""
            ratio = f"{s['ciede2000'] / base[1]:.3f}" if base else ""
            lines.append(f"| {label} | {n} | {s['psnr']:.2f} | {gain} | {s['ciede2000']:.2f} | {ratio} | "
                         f"{s['colorfulness']:.1f} | {s['fid']:.2f} |")
    path = out / "table.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=SPEC")
    parser.add_argument("--points", default="0,1,2,5,10,20,50")
    parser.add_argument("--sheet-points", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    setup_logging(False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "scores.json"
    scores: dict[str, dict[str, dict[str, float]]] = json.loads(store.read_text()) if store.is_file() else {}
    models = dict(item.split("=", 1) for item in args.model)
    counts = [int(n) for n in args.points.split(",")]
    loaded = {label: load(spec) for label, spec in models.items()}
    kept: dict[int, dict[str, EvaluationResult]] = {}
    for count in counts:
        wanted = {label: c for label, c in loaded.items() if str(count) not in scores.get(label, {})}
        if count in (0, args.sheet_points):
            wanted = dict(loaded)  # their sample photos make the sheet
        if not wanted:
            continue
        print(f"N = {count}: {', '.join(wanted)}", flush=True)
        results = evaluate_models(wanted, args.data, limit=args.limit, metrics=METRICS,
                                  progress=sys.stderr.isatty(), points=count)
        kept[count] = {r.name: r for r in results}
        for result in results:
            scores.setdefault(result.name, {})[str(count)] = {k: float(v) for k, v in result.summary.items()}
        write_text_atomic(store, json.dumps(scores, indent=1))
    first = next(iter(models))
    base = scores[first].get("0")
    write_table(scores, out, (base["psnr"], base["ciede2000"]) if base else None)
    write_curve(scores, out)
    if 0 in kept and args.sheet_points in kept:
        write_sheet(kept[args.sheet_points], kept[0][first], out, args.sheet_points, source_size=256)
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
