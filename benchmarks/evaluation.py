"""Speed and memory of `chromalab evaluate`: the gray baseline on the validation photos.

    nice -n 10 .venv/bin/python benchmarks/evaluation.py [--data DIR] [--limit N]
        [--metrics fid,psnr,...] [--threads N] [--out REPORT_DIR]
    nice -n 10 .venv/bin/python benchmarks/evaluation.py --fid-cache [--model default] --metrics fid --limit 300

Prints images/s of the whole evaluation (decode, gray, "colorize", every metric), peak RSS,
and the gray baseline's metrics next to the reference figures of /work/shared/data/README.md.

``--fid-cache``: the same evaluation four times in one process - with TorchScript Inception and
no FID reference cache (how evaluation ran before onnxruntime and the cache), with onnxruntime
and no cache (every ground truth through Inception), then with the cache (filling it if it is
empty), then with it again (a hit, certainly) - and prints the seconds of each, the speed-ups of
the last over the first two, and the FIDs (the cached and uncached onnxruntime ones must be equal).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

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
    parser.add_argument("--model", default=None, help="a model (name, file or run) instead of the gray baseline")
    parser.add_argument("--fid-cache", action="store_true", help="time the evaluation without and with the FID reference cache")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from chromalab.evaluation import GrayBaseline, evaluate

    metrics = [m for m in args.metrics.split(",")] if args.metrics else None
    colorizer = GrayBaseline()
    if args.model:
        from chromalab.evaluation.compare import load_models

        colorizer = next(iter(load_models([args.model])[0].values()))

    def timed(reference_cache: bool) -> tuple[float, Any]:
        start = time.perf_counter()
        result = evaluate(colorizer, args.data, size=256, limit=args.limit, batch_size=args.batch_size,
                          metrics=metrics, progress=sys.stderr.isatty(), reference_cache=reference_cache)
        return time.perf_counter() - start, result

    if args.fid_cache:
        return time_reference_cache(timed, args)
    seconds, result = timed(reference_cache=False)
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


def time_reference_cache(timed: Callable[[bool], tuple[float, Any]], args: argparse.Namespace) -> int:
    from chromalab.evaluation.fid import BACKEND_ENV

    # The starting point: TorchScript Inception, every ground truth through it each time.
    previous = os.environ.get(BACKEND_ENV)
    os.environ[BACKEND_ENV] = "torch"
    try:
        timed(reference_cache=False)  # warm-up
        torchscript, result_torchscript = timed(reference_cache=False)
    finally:
        if previous is None:
            os.environ.pop(BACKEND_ENV)
        else:
            os.environ[BACKEND_ENV] = previous
    timed(reference_cache=False)  # warm-up: model loading, the ONNX export of Inception, page cache
    without, result_without = timed(reference_cache=False)
    filling, _ = timed(reference_cache=True)
    with_cache, result_with = timed(reference_cache=True)
    count = result_without.settings["images"]
    fid_torchscript = result_torchscript.summary.get("fid")
    fid_without, fid_with = result_without.summary.get("fid"), result_with.summary.get("fid")
    print(f"data: {args.data}  photos: {count}  model: {args.model or 'gray'}  torch threads: {torch.get_num_threads()}  "
          f"metrics: {','.join(result_without.summary)}")
    print(f"TorchScript Inception, no cache: {torchscript:7.1f} s  {count / torchscript:6.2f} images/s")
    print(f"onnxruntime, no cache:           {without:7.1f} s  {count / without:6.2f} images/s")
    print(f"with it (filling it if empty):   {filling:7.1f} s  {count / filling:6.2f} images/s")
    print(f"with it (read from the cache):   {with_cache:7.1f} s  {count / with_cache:6.2f} images/s  "
          f"-> {without / with_cache:.2f}x the uncached onnxruntime run, {torchscript / with_cache:.2f}x TorchScript")
    print(f"FID without / with the cache: {fid_without!r} / {fid_with!r}  (equal: {fid_without == fid_with}); "
          f"TorchScript: {fid_torchscript!r} (differs by {abs(fid_torchscript - fid_with):.2g})")
    return 0 if fid_without == fid_with else 1


if __name__ == "__main__":
    raise SystemExit(main())
