"""chromalab colorize INPUT... --out DIR"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "colorize", help="colorize photos (files, folders, globs) at full resolution",
        description="Colorize photos at their full resolution. Folders are searched recursively "
        "and mirrored under --out. Inputs are never modified; existing outputs are kept unless "
        "--overwrite.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--model", default=None, help="shipped model name, model file or run folder (default: the shipped model)")
    parser.add_argument("--out", default="colorized", help="output folder (default: ./colorized)")
    parser.add_argument("--size", type=int, default=None, help="resolution the network runs at (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=8, help="photos per forward pass")
    parser.add_argument("--format", default=None, choices=["png", "jpg", "jpeg", "tiff", "bmp", "webp"],
                        help="output format (default: same as the input)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chromalab.inference.colorize import colorize_files, plan_jobs
    from chromalab.inference.colorizer import Colorizer

    colorizer = Colorizer.load(args.model)
    jobs, _ = plan_jobs(args.inputs, Path(args.out), args.format)
    errors: list[str] = []
    with Progress(TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("colorize", total=len(jobs))
        report = colorize_files(
            colorizer, args.inputs, args.out, size=args.size, batch_size=args.batch_size,
            overwrite=args.overwrite, image_format=args.format,
            on_progress=lambda n: progress.advance(task, n),
            on_error=lambda message: (errors.append(message), print(f"error: {message}", file=sys.stderr)),
        )
    print(f"colorized {len(report.written)} photo(s) into {args.out}"
          + (f"; {len(report.failed)} failed" if report.failed else ""))
    return 0 if report.ok else 1
