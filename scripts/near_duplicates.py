"""Near-duplicate check of a training corpus against evaluation photos (perceptual hashes).

    python scripts/near_duplicates.py ../corpus/train ../shared/data/val ../shared/data/dev \
        --out docs/reports/near-duplicates.md

A training photo that is a resized, re-encoded or slightly cropped copy of an evaluation photo
would flatter every figure measured on it. Each photo gets two 64-bit perceptual hashes from
ImageHash (a difference hash and a DCT hash); a pair is reported when *both* are within
``--distance`` bits, which keeps the few hash collisions between unrelated photos out. The
report lists every pair with both paths and distances, and how many photos were compared.
Exit code 0 when no pair is found, 1 when some are (so a recipe can stop on it), 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from tqdm import tqdm

from chromalab.data.folder import list_images


def hashes(paths: list[Path], label: str) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """(N,) uint64 dHashes and pHashes of the photos that decode, and those photos' paths."""
    d_hashes, p_hashes, kept = [], [], []
    for path in tqdm(paths, desc=f"hashing {label}", unit="photo", mininterval=5):
        try:
            with Image.open(path) as image:
                image.draft("L", (64, 64))  # JPEG: decode at 1/8 scale, plenty for 8x8 hashes
                gray = image.convert("L")
        except (OSError, ValueError):
            continue  # prepare reports unreadable photos; here they cannot be duplicates
        d_hashes.append(_as_int(imagehash.dhash(gray)))
        p_hashes.append(_as_int(imagehash.phash(gray)))
        kept.append(path)
    return np.array(d_hashes, dtype=np.uint64), np.array(p_hashes, dtype=np.uint64), kept


def _as_int(image_hash: imagehash.ImageHash) -> int:
    return int("".join("1" if bit else "0" for bit in image_hash.hash.flatten()), 2)


BYTE_BITS = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)


def popcount(values: np.ndarray) -> np.ndarray:
    """Bits set in each uint64: numpy 2's popcount instruction, else a table of byte counts."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    return BYTE_BITS[values.view(np.uint8)].reshape(*values.shape, 8).sum(-1, dtype=np.uint16)


def near_pairs(train: tuple[np.ndarray, np.ndarray], evaluation: tuple[np.ndarray, np.ndarray],
               distance: int) -> list[tuple[int, int, int, int]]:
    """(train index, eval index, dHash distance, pHash distance) for every near pair."""
    pairs = []
    for j in range(len(evaluation[0])):
        d = popcount(train[0] ^ evaluation[0][j])
        p = popcount(train[1] ^ evaluation[1][j])
        for i in np.flatnonzero((d <= distance) & (p <= distance)):
            pairs.append((int(i), j, int(d[i]), int(p[i])))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="the training corpus (recursive)")
    parser.add_argument("evaluation", type=Path, nargs="+", help="evaluation folders (recursive)")
    parser.add_argument("--distance", type=int, default=6, help="bits within which both hashes must agree (default 6)")
    parser.add_argument("--out", type=Path, help="write a Markdown report here (refused if it exists)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--matches", type=Path,
                        help="also write the evaluation photos that have a near pair, one resolved path per line "
                        "(to leave them out of a held-out set)")
    args = parser.parse_args(argv)
    for folder in (args.train, *args.evaluation):
        if not folder.is_dir():
            print(f"{folder}: no such folder", file=sys.stderr)
            return 2
    if args.out and args.out.exists() and not args.overwrite:
        print(f"{args.out}: exists; give --overwrite to replace it", file=sys.stderr)
        return 2
    eval_paths = [p for folder in args.evaluation for p in list_images(folder)]
    train_d, train_p, train_kept = hashes(list_images(args.train), "training photos")
    eval_d, eval_p, eval_kept = hashes(eval_paths, "evaluation photos")
    pairs = near_pairs((train_d, train_p), (eval_d, eval_p), args.distance)
    lines = [
        "# Near-duplicates of evaluation photos in the training corpus", "",
        f"`python scripts/near_duplicates.py {args.train} {' '.join(map(str, args.evaluation))}`", "",
        f"{len(train_kept):,} training photos against {len(eval_kept):,} evaluation photos; a pair is "
        f"reported when its dHash and its pHash are both within {args.distance} of 64 bits.", "",
        f"**{len(pairs)} pair(s) found.**", "",
    ]
    if pairs:
        lines += ["| training photo | evaluation photo | dHash bits | pHash bits |", "|---|---|---|---|"]
        lines += [f"| {train_kept[i]} | {eval_kept[j]} | {d} | {p} |" for i, j, d, p in pairs]
    report = "\n".join(lines) + "\n"
    if args.out:
        from chromalab.atomic import write_text_atomic

        write_text_atomic(args.out, report)
    if args.matches:
        from chromalab.atomic import write_text_atomic

        matched = sorted({str(eval_kept[j].resolve()) for _, j, _, _ in pairs})
        write_text_atomic(args.matches, "".join(f"{path}\n" for path in matched))
    print(report)
    return 1 if pairs else 0


if __name__ == "__main__":
    sys.exit(main())
