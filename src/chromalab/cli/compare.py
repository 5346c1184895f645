"""chromalab compare MODEL_OR_RUN... --data DIR [--size 256] [--limit N] [--out DIR] [--baselines]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chromalab.cli.evaluate import (
    add_common_arguments,
    add_model_list_argument,
    default_out,
    parse_metrics,
    print_summary,
    report_error,
    skipped_status,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="score several models on the same photos: table, image grid, training curves",
        description="Evaluate several models (run folders, model files or shipped names) on the same "
        "photos in one pass. Writes metrics.md/.csv/.json (best per column in bold), per_image.csv, "
        "grid.png (a row per photo: gray | each model | truth) and curves.png (training curves of "
        "run folders).",
    )
    add_model_list_argument(parser)
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chromalab.evaluation.compare import COMPARE_FILES, compare, write_comparison
    from chromalab.atomic import check_outputs_free

    out = Path(args.out) if args.out else default_out("compare")
    check_outputs_free(out, COMPARE_FILES, args.overwrite)
    comparison = compare(args.models, args.data, size=args.size, limit=args.limit,
                         batch_size=args.batch_size, baselines=args.baselines,
                         metrics=parse_metrics(args.metrics), progress=sys.stderr.isatty(),
                         device=args.device, on_error=report_error,
                         reference_cache=None if args.fid_cache else False, points=args.points,
                         damage=args.damage)
    written = write_comparison(comparison, out, overwrite=args.overwrite)
    print_summary(comparison.results)
    print(f"wrote {', '.join(p.name for p in written.values())} to {out}")
    return skipped_status(comparison.results)
