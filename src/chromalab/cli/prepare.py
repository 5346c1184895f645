"""chromalab prepare SRC DST: resize, clean and deduplicate a photo folder for training."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="resize and clean a photo folder for training (optionally into tar shards)",
        description="Resize every photo below SRC (shorter side to --size, center crop by default) "
        "into the same tree under DST, dropping unreadable, too small, and optionally grayscale "
        "and duplicate photos. Writes DST/manifest.csv and DST/summary.json. Resumable: run it "
        "again to finish an interrupted run. Never writes inside SRC.",
    )
    parser.add_argument("source", metavar="SRC", help="photo folder (recursive; only read)")
    parser.add_argument("destination", metavar="DST", help="output folder (outside SRC)")
    parser.add_argument("--size", type=int, default=256, help="shorter side of the outputs (default 256)")
    parser.add_argument("--crop", choices=("center", "none"), default="center",
                        help="center: size x size squares (default); none: keep the aspect ratio")
    parser.add_argument("--min-size", type=int, default=64,
                        help="drop photos whose shorter side is below this (default 64)")
    parser.add_argument("--drop-gray", action="store_true", help="drop grayscale and toned (sepia) photos")
    parser.add_argument("--dedupe", action="store_true", help="drop photos whose decoded pixels repeat")
    parser.add_argument("--shards", type=int, default=None, metavar="N",
                        help="also write WebDataset-style tar shards of N photos each to DST/shards/")
    parser.add_argument("--format", choices=("jpg", "png", "webp"), default="jpg",
                        help="output format (default jpg; webp is about a third smaller)")
    parser.add_argument("--quality", type=int, default=None,
                        help="jpg/webp quality, 1-100 (default 95 for jpg, 90 for webp)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shard packing order")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from chromalab.data.prepare import PrepareOptions, prepare

    options = PrepareOptions(size=args.size, crop=args.crop, min_size=args.min_size, drop_gray=args.drop_gray,
                             dedupe=args.dedupe, format=args.format, quality=args.quality, shards=args.shards, seed=args.seed)
    summary = prepare(args.source, args.destination, options, workers=args.workers,
                      progress=not args.no_progress,
                      on_error=lambda message: print(f"error: {message}", file=sys.stderr))
    table = Table("status", "photos")
    for status, count in summary["counts"].items():
        if count or status == "kept":
            table.add_row(status, f"{count:,}")
    console = Console()
    console.print(table)
    destination = Path(summary["destination"])
    print(f"{summary['total']:,} photos in {summary['seconds']:.1f} s")
    print(f"written {summary['written']:,}, already done {summary['reused']:,}, removed {summary['removed']:,}")
    if summary["shards"]:
        print(f"shards: {len(summary['shards'])} in {destination / 'shards'}; train with "
              f"--data '{summary['shard_pattern']}'")
    print(f"manifest: {destination / 'manifest.csv'}, summary: {destination / 'summary.json'}")
    # Unreadable or unwritable photos were skipped (each named above): exit 1, as documented.
    # Photos dropped by a filter (too small, gray, duplicate) are the command's work, not errors.
    return 1 if summary["problems"] else 0
