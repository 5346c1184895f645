"""Photos per second of ``chromalab explore``, and what that means for a million photos.

    nice -n 10 .venv/bin/python benchmarks/explore.py --data /work/shared/data/train --workers 1,2

Each run analyses the collection (or a seeded sample of --limit photos) without plots and
prints the throughput; the last column extrapolates linearly to 1,000,000 photos, which holds
because the work per photo is bounded (photos are analysed at 256 px) and memory is constant.
The load average is printed too: on a shared machine it explains most of the variance. For
one worker (analysis in this process) the CPU time per photo is printed as well: it does not
depend on what else the machine is doing, and 1000 / (CPU ms per photo) is what one free core
would do.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from chromalab.data.explore import explore_collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/shared/data/train", help="photo folder")
    parser.add_argument("--workers", default=f"1,{os.cpu_count()}", help="comma-separated worker counts")
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N photos (default: all)")
    parser.add_argument("--size", type=int, default=256, help="analysis size (longer side)")
    args = parser.parse_args()

    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'workers':>7} {'photos':>7} {'seconds':>8} {'photos/s':>9} {'1M photos':>10} {'CPU ms/photo':>13}")
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as out:
            start, cpu = time.perf_counter(), time.process_time()
            result = explore_collection(args.data, out, workers=workers, limit=args.limit, size=args.size,
                                        progress=False, plots=False)
            seconds = time.perf_counter() - start  # includes listing the folder and the tables
            cpu = time.process_time() - cpu
        count = result.stats.photos + result.stats.unreadable
        rate = count / seconds
        cpu_column = f"{1000 * cpu / count:>13.1f}" if workers == 1 else f"{'-':>13}"
        print(f"{workers:>7} {count:>7} {seconds:>8.1f} {rate:>9.1f} {1e6 / rate / 3600:>9.1f}h {cpu_column}",
              flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
