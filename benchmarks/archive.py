"""Photos per second of `chromalab colorize --ray` against the single-machine command.

    python benchmarks/archive.py [--data ../shared/data/val/imagenet_det256] [--photos 8000]
        [--dev ../shared/data/dev] [--scans 40] [--actors 1,2] [--repeats 1]

Two folders, built in a temporary folder (no photo is kept): ``--photos`` small photos (the val
photos linked under several names, 256x256) and ``--scans`` photos of 12 megapixels (the dev
photos upscaled, JPEG quality 95). Each is colorized by the command a user runs (a new process
each time): once on one machine, and with ``--ray`` (a local Ray started by the command) with
1 and 2 actors, threads per actor = cores / actors. Start-up (the same command on one photo:
Python, the model, and for --ray starting Ray and its actors) is measured apart; photos/s after
start-up = photos / (wall - start-up). The best of ``--repeats`` runs counts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SCAN_SIZE = (4243, 2828)  # 12.0 megapixels, 3:2


def linked_photos(source: Path, count: int, folder: Path) -> Path:
    """``count`` photos: the source's, linked under several names (copy-N/name)."""
    from chromalab.data.folder import list_images

    photos = list_images(source)
    if not photos:
        raise SystemExit(f"{source}: no photos")
    for index in range(count):
        copy = folder / f"copy-{index // len(photos)}"
        copy.mkdir(parents=True, exist_ok=True)
        photo = photos[index % len(photos)]
        (copy / photo.name).symlink_to(photo.resolve())
    return folder


def scans(source: Path, count: int, folder: Path) -> Path:
    """``count`` 12-MP JPEGs: the dev photos upscaled (and repeated if there are fewer)."""
    from chromalab.data.folder import list_images

    photos = list_images(source)
    if not photos:
        raise SystemExit(f"{source}: no photos")
    folder.mkdir(parents=True)
    for index in range(count):
        photo = photos[index % len(photos)]
        Image.open(photo).convert("RGB").resize(SCAN_SIZE, Image.Resampling.BICUBIC).save(
            folder / f"scan{index:03d}-{photo.stem}.jpg", quality=95)
    return folder


def timed_run(inputs: list[str], out: Path, options: list[str]) -> float:
    """Seconds of one `chromalab colorize` process, start to exit."""
    command = [sys.executable, "-m", "chromalab", "colorize", *inputs, "--out", str(out), *options]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "val" / "imagenet_det256")
    parser.add_argument("--photos", type=int, default=8000)
    parser.add_argument("--dev", type=Path, default=SHARED / "dev")
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--actors", default="1,2", help="comma-separated actor counts for --ray")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    # The benchmark's own Ray: no token shared between its processes, no usage report.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    configurations = [("one machine", [])] + [
        (f"--ray, {n} actor{'s' if n > 1 else ''} x {max(1, cores // n)} threads",
         ["--ray", "--ray-actors", str(n), "--ray-threads-per-actor", str(max(1, cores // n))])
        for n in map(int, args.actors.split(","))]
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        sets = []
        if args.photos:
            sets.append((f"{args.photos} photos of 256x256",
                         linked_photos(args.data, args.photos, work_dir / "photos"), args.photos))
        if args.scans:
            sets.append((f"{args.scans} photos of 12 MP", scans(args.dev, args.scans, work_dir / "scans"), args.scans))
        print(f"{cores} cores; best of {args.repeats} run(s) each; start-up = the same command on one photo")
        print("| photos | command | wall s | start-up s | photos/s after start-up | vs one machine |")
        print("|---|---|---:|---:|---:|---:|")
        run = 0
        for name, folder, count in sets:
            one_photo = str(next(p for p in sorted(folder.rglob("*")) if p.is_file()))
            baseline = None
            for label, options in configurations:
                walls, startups = [], []
                for _ in range(args.repeats):
                    run += 1
                    startups.append(timed_run([one_photo], work_dir / f"one-{run}", options))
                    walls.append(timed_run([str(folder)], work_dir / f"out-{run}", options))
                    written = sum(1 for p in (work_dir / f"out-{run}").rglob("*")
                                  if p.is_file() and ".chromalab-journal" not in p.parts)
                    if written != count:
                        raise SystemExit(f"run {run}: wrote {written} of {count} photos")
                    shutil.rmtree(work_dir / f"out-{run}")
                wall, startup = min(walls), min(startups)
                rate = count / max(wall - startup, 1e-9)
                baseline = baseline or rate
                print(f"| {name} | {label} | {wall:.1f} | {startup:.1f} | {rate:.1f} | {rate / baseline:.0%} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
