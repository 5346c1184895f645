"""chromalab explore DIR --out REPORT: color statistics and plots of a photo collection."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explore", help="statistics and plots of a photo collection (colors, sizes, gray share)",
        description="One parallel pass over every photo below DIR: RGB and Lab histograms and "
        "statistics, the a*b* density, widths and heights, the share of monochrome photos and "
        "the colorfulness of each photo. Writes report.md, PNG plots, CSV and JSON into REPORT.",
    )
    parser.add_argument("folder", metavar="DIR", help="photo folder (recursive)")
    parser.add_argument("--out", required=True, metavar="REPORT", help="report folder (created)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--limit", type=int, default=None,
                        help="analyse a random sample of N photos (seeded) instead of all")
    parser.add_argument("--size", type=int, default=256,
                        help="longer side, in px, at which each photo is analysed (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--overwrite", action="store_true", help="replace report files already in REPORT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chromalab.data.explore import explore_collection
    from chromalab.errors import ChromalabError

    if args.size < 16:
        raise ChromalabError(f"--size {args.size}: must be at least 16")
    if args.limit is not None and args.limit < 1:
        raise ChromalabError(f"--limit {args.limit}: must be at least 1")
    result = explore_collection(
        args.folder, args.out, workers=args.workers, limit=args.limit, size=args.size,
        progress=not args.no_progress, seed=args.seed, overwrite=args.overwrite,
        # Each unreadable photo: one line as soon as it is known, like every other command.
        on_error=lambda path, reason: print(f"error: {path}: {reason}", file=sys.stderr),
    )
    s = result.summary
    print(f"{s['photos']:,} photo{'' if s['photos'] == 1 else 's'} ({s['unreadable']:,} unreadable, "
          f"{100 * s['monochrome_fraction']:.1f}% monochrome) in {result.seconds:.1f} s "
          f"({result.photos_per_second:.0f} photos/s)")
    print(f"report: {result.out / 'report.md'}")
    return 1 if s["unreadable"] else 0  # the Guarantees: 1 when some inputs were skipped
