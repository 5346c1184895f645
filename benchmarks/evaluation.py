"""Speed and memory of `chromalab evaluate`: the gray baseline on the validation photos.

    nice -n 10 .venv/bin/python benchmarks/evaluation.py [--data DIR] [--limit N]
        [--metrics fid,psnr,...] [--threads N] [--out REPORT_DIR]

Prints images/s of the whole evaluation (decode, gray, "colorize", every metric), peak RSS,
and the gray baseline's metrics next to the reference figures of /work/shared/data/README.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "val" / "imagenet_det256"
# /work/shared/data/README.md, "gray" on val/imagenet_det256 (an independent implementation).
REFERENCE = {"fid": 47.6, "colorfulness": 0.0, "colorfulness_truth": 43.3, "ciede2000": 11.5,
             "psnr": 21.8, "ssim": 0.903}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--metrics", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from chromalab.evaluation import GrayBaseline, evaluate

    metrics = [m for m in args.metrics.split(",")] if args.metrics else None
    start = time.perf_counter()
    result = evaluate(GrayBaseline(), args.data, size=256, limit=args.limit, batch_size=args.batch_size,
                      metrics=metrics, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    count = result.settings["images"]
    print(f"data: {args.data}  photos: {count}  torch threads: {torch.get_num_threads()}  "
          f"metrics: {','.join(result.summary)}")
    print(f"evaluation: {seconds:.1f} s  ->  {count / seconds:.2f} images/s (everything included)")
    print(f"peak RSS: {peak_mb:.0f} MB")
    print(f"{'metric':<20}{'gray (ours)':>14}{'reference':>12}")
    for metric, value in result.summary.items():
        reference = REFERENCE.get(metric)
        print(f"{metric:<20}{value:>14.4f}{'' if reference is None else f'{reference:>12}'}")
    for note in result.notes:
        print(f"note: {note}")
    if args.out:
        result.write(args.out, overwrite=True)
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
