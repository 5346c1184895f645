"""chromalab evaluate --model M --data DIR [--size 256] [--out REPORT] [--baselines] [--limit N]"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence


MODELS_HELP = "run folder, model file (.safetensors/.ckpt) or shipped model name"


def add_model_list_argument(parser: argparse.ArgumentParser) -> None:
    """The positional list of models that ``compare`` and ``scorecard`` score side by side."""
    parser.add_argument("models", nargs="+", metavar="MODEL_OR_RUN", help=MODELS_HELP)


def add_scoring_options(parser: argparse.ArgumentParser,
                        limit_help: str = "evaluate at most N photos (in sorted order)") -> None:
    """Options of every command that scores photos: ``evaluate``, ``compare``, ``scorecard``."""
    parser.add_argument("--size", type=int, default=256,
                        help="shorter side resized to SIZE, center crop SIZE x SIZE; 0 = full resolution (default: 256)")
    parser.add_argument("--limit", type=int, default=None, help=limit_help)
    parser.add_argument("--batch-size", type=int, default=16, help="photos per batch (default: 16)")
    parser.add_argument("--out", default=None, help="report folder (default: reports/<command>-<time>)")
    parser.add_argument("--overwrite", action="store_true", help="replace report files already in --out")
    parser.add_argument("--device", default=None, help="where Inception and ST-LPIPS run (default: cuda if available)")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``evaluate`` and ``compare``."""
    parser.add_argument("--data", required=True, help="folder of photos (searched recursively) or one image")
    add_scoring_options(parser)
    parser.add_argument("--metrics", default=None,
                        help="comma-separated subset of: fid, colorfulness, colorfulness_truth, delta_colorfulness, "
                        "psnr, ssim, ssim_ab, ciede2000, lpips, delta_l (default: all)")
    parser.add_argument("--baselines", action="store_true",
                        help="also score the 'gray' (no color) and 'mean-ab' (constant mean chroma) baselines")
    parser.add_argument("--points", type=int, default=0, metavar="N",
                        help="give every model N color points per photo, simulated from the truth (seeded; "
                        "uniform positions; the truth's 3x3 mean color): scores point-guided colorization")
    parser.add_argument("--damage", action="store_true",
                        help="damage every gray input as an old photo (faded contrast, blur, film grain, JPEG; "
                        "seeded by file name; the truth stays clean): scores robustness on real old photos")
    parser.add_argument("--no-fid-cache", dest="fid_cache", action="store_false",
                        help="measure the ground truths' Inception statistics even if the cache has them "
                        "(default: read/save them in the user cache; also CHROMALAB_FID_CACHE=off)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model on photos (FID, CIEDE2000, PSNR, SSIM, LPIPS, colorfulness)",
        description="Colorize the gray version of every photo and score the result against the "
        "original. Writes metrics.json, metrics.md, per_image.csv and samples.png to --out.",
    )
    parser.add_argument("--model", default=None,
                        help="shipped model name, model file, run folder, or a baseline ('gray', 'mean-ab') "
                        "(default: the shipped model)")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def parse_metrics(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def default_out(command: str) -> Path:
    return Path("reports") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_colorizer(spec: str | None) -> tuple[str, Any]:
    """A model spec, or a baseline name that is not also a path -> (label, colorizer)."""
    from chromalab.evaluation.baselines import BASELINES
    from chromalab.evaluation.compare import load_models

    if spec in BASELINES and not Path(spec).exists():
        return spec, BASELINES[spec]()
    colorizers, _ = load_models([spec or "default"])
    return next(iter(colorizers.items()))


def print_summary(results: Sequence[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from chromalab.evaluation.metrics import METRICS
    from chromalab.evaluation.report import ARROWS, best_rows, format_value, metric_columns

    columns = metric_columns(results)
    best = best_rows(results, columns)
    table = Table("model", *(f"{c} {ARROWS[METRICS[c]]}".strip() for c in columns))
    for row, result in enumerate(results):
        cells = [format_value(c, result.summary.get(c)) for c in columns]
        table.add_row(result.name, *(f"[bold]{text}[/bold]" if best[c] == row else text
                                     for c, text in zip(columns, cells)))
    Console(width=200).print(table)
    for note in dict.fromkeys(n for r in results for n in r.notes):
        print(f"note: {note}")


def run(args: argparse.Namespace) -> int:
    from chromalab.evaluation.baselines import make_baselines
    from chromalab.evaluation.evaluate import evaluate_models
    from chromalab.atomic import check_outputs_free
    from chromalab.evaluation.report import REPORT_FILES, write_report

    out = Path(args.out) if args.out else default_out("evaluate")
    check_outputs_free(out, REPORT_FILES, args.overwrite)  # fail now, not after the work
    label, colorizer = load_colorizer(args.model)
    colorizers = {label: colorizer}
    if args.baselines:
        for name, baseline in make_baselines().items():
            colorizers.setdefault(name, baseline)
    results = evaluate_models(colorizers, args.data, size=args.size, limit=args.limit,
                              batch_size=args.batch_size, metrics=parse_metrics(args.metrics),
                              progress=sys.stderr.isatty(), device=args.device, on_error=report_error,
                              reference_cache=None if args.fid_cache else False, points=args.points,
                              damage=args.damage)
    write_report(results, out, overwrite=args.overwrite)
    print_summary(results)
    print(f"wrote metrics.json, metrics.md, per_image.csv, samples.png to {out}")
    return skipped_status(results)


def report_error(message: str) -> None:
    """An unreadable photo, in one line, as every command names a bad input."""
    print(f"error: {message}", file=sys.stderr)


def skipped_status(results: Sequence[Any]) -> int:
    """The exit status: 1 when photos were skipped (each was named), else 0."""
    skipped = results[0].settings.get("skipped") or {}
    if skipped:
        print(f"skipped {len(skipped)} unreadable photo(s); the scores cover the other "
              f"{results[0].settings.get('images', 0)}")
    return 1 if skipped else 0
