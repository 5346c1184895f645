"""Move every k-th photo of a freshly unpacked folder aside, before anything trains on it.

    python scripts/hold_out.py UNPACKED HELDOUT --every K

Photos are taken in sorted order of their path inside UNPACKED (so the choice is the same on
every machine and spreads over the sub-folders: classes, ages, species) and moved to the same
relative path under HELDOUT. Used by scripts/build-corpus-v2.sh on its own unpacked copies
only; it refuses a HELDOUT that already holds files, so a choice is never made twice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chromalab.data.folder import list_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("unpacked", type=Path)
    parser.add_argument("heldout", type=Path)
    parser.add_argument("--every", type=int, required=True, help="hold out photos 0, K, 2K, ... of the sorted list")
    args = parser.parse_args(argv)
    if args.every < 1:
        print(f"--every must be 1 or more (got {args.every})", file=sys.stderr)
        return 2
    if not args.unpacked.is_dir():
        print(f"{args.unpacked}: no such folder", file=sys.stderr)
        return 2
    if args.heldout.exists() and any(p.is_file() for p in args.heldout.rglob("*")):
        print(f"{args.heldout}: already holds photos; the held-out choice is made once", file=sys.stderr)
        return 2
    photos = sorted(list_images(args.unpacked), key=lambda p: p.relative_to(args.unpacked).as_posix())
    chosen = photos[:: args.every]
    for photo in chosen:
        target = args.heldout / photo.relative_to(args.unpacked)
        target.parent.mkdir(parents=True, exist_ok=True)
        photo.rename(target)
    print(f"held out {len(chosen)} of {len(photos)} photos: {args.heldout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
