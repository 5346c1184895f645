"""Photos per second of `chromalab colorize` on a folder of small photos, as a user runs it.

    python benchmarks/folder.py [--data ../shared/data/val/imagenet_det256] [--limit N]
        [--precision fp32,int8] [--batch-size default,8] [--repeats 2]

Runs the command itself (a new process each time, start-up included) on the folder as it is
(color photos) and on a one-channel gray copy of it (what archive scans usually are), writing
into a temporary folder, and prints the wall-clock photos/s of each run, its start-up (the
same command on one photo) and the photos/s without it. The best of ``--repeats`` runs counts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "val" / "imagenet_det256"


def gray_copy(photos: list[Path], folder: Path) -> Path:
    folder.mkdir()
    for photo in photos:
        Image.open(photo).convert("L").save(folder / f"{photo.stem}.jpg", quality=95)
    return folder


def timed_run(inputs: list[str], out: Path, options: list[str]) -> float:
    """Seconds of one `chromalab colorize` process, start to exit."""
    command = [sys.executable, "-m", "chromalab", "colorize", *inputs, "--out", str(out), *options]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--precision", default="auto", help="comma-separated: auto, fp32, int8, bf16")
    parser.add_argument("--batch-size", default="default",
                        help="comma-separated batch sizes; 'default' passes none (the command's own: 32 for photos)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from chromalab.data.folder import list_images

    photos = list_images(args.data)[: args.limit]
    if not photos:
        raise SystemExit(f"{args.data}: no photos")
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        folders = {"color": args.data if args.limit is None else None,
                   "gray": gray_copy(photos, work_dir / "gray")}
        if folders["color"] is None:  # a subset: link it into a folder of its own
            folders["color"] = work_dir / "color"
            folders["color"].mkdir()
            for photo in photos:
                (folders["color"] / photo.name).symlink_to(photo.resolve())
        print(f"{len(photos)} photos from {args.data}; best of {args.repeats} runs each")
        print("| photos | precision | batch | wall s | photos/s | start-up s | photos/s after start-up |")
        print("|---|---|---:|---:|---:|---:|---:|")
        run = 0
        for kind, folder in folders.items():
            for precision in args.precision.split(","):
                for batch in args.batch_size.split(","):
                    options = ["--precision", precision] + ([] if batch == "default" else ["--batch-size", batch])
                    walls, startups = [], []
                    for _ in range(args.repeats):
                        run += 1
                        startups.append(timed_run([str(photos[0])], work_dir / f"one-{run}", options))
                        walls.append(timed_run([str(folder)], work_dir / f"out-{run}", options))
                        written = sum(1 for p in (work_dir / f"out-{run}").rglob("*") if p.is_file())
                        if written != len(photos):
                            raise SystemExit(f"run {run}: wrote {written} of {len(photos)} photos")
                    wall, startup = min(walls), min(startups)
                    print(f"| {kind} | {precision} | {batch} | {wall:.2f} | {len(photos) / wall:.1f} | "
                          f"{startup:.2f} | {(len(photos) - 1) / max(wall - startup, 1e-9):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
