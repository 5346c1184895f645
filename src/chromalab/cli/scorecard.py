"""chromalab scorecard MODEL... --slices DIR [--val DIR] [--out DIR]: every kind of photo, one table"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chromalab.cli.evaluate import add_model_list_argument, add_scoring_options, default_out, report_error


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scorecard", help="score models on every kind of photo (held-out slices, val, damaged val) against gray",
        description="Score gray and each model on every sub-folder of --slices (one kind of photo each: "
        "people, vehicles, birds, ...) and on --val, clean and with its gray inputs damaged as old "
        "photos. Writes scorecard.md/.csv/.json (FID, FID / gray, colorfulness against the truth's, "
        "CIEDE2000, PSNR, |dL*|) and sheet.jpg (a few photos of each set: gray | each model | truth).",
    )
    add_model_list_argument(parser)
    parser.add_argument("--slices", default=None, help="folder with one sub-folder of photos per kind of photo")
    parser.add_argument("--val", default=None, help="evaluation photos, scored clean and damaged")
    parser.add_argument("--no-damaged", dest="damaged", action="store_false", help="score --val clean only")
    parser.add_argument("--sheet-photos", type=int, default=2, metavar="N",
                        help="photos of each set on the sheet (default: 2)")
    add_scoring_options(parser, limit_help="at most N photos of each set (in sorted order)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chromalab.atomic import check_outputs_free
    from chromalab.evaluation.scorecard import (
        SCORECARD_FILES,
        print_scorecard,
        score,
        scorecard_sets,
        write_scorecard,
    )

    sets = scorecard_sets(args.slices, args.val, damaged_val=args.damaged)
    out = Path(args.out) if args.out else default_out("scorecard")
    check_outputs_free(out, SCORECARD_FILES, args.overwrite)  # before minutes of scoring
    skipped: list[str] = []

    def on_error(message: str) -> None:
        skipped.append(message)
        report_error(message)

    card = score(args.models, sets, size=args.size, limit=args.limit, batch_size=args.batch_size,
                 progress=sys.stderr.isatty(), device=args.device, on_error=on_error)
    written = write_scorecard(card, out, overwrite=args.overwrite, per_set=args.sheet_photos)
    print_scorecard(card)
    print(f"wrote {', '.join(p.name for p in written.values())} to {out}")
    if skipped:
        print(f"skipped {len(skipped)} unreadable photo(s) (named above); the scores cover the others")
    return 1 if skipped else 0
