"""Tune point propagation: PSNR and CIEDE2000 of the default model + N simulated points.

The model's a*b* are predicted once per photo; each setting then only spreads the points and
merges, so a grid of settings costs seconds per setting. The photos are the evaluation
protocol's (shorter side to 256, center crop, gray input = the photo's L*), the points those of
``chromalab evaluate --points N`` (chromalab.evaluation.simulated_points).

    python benchmarks/propagation_tuning.py --data ../shared/data/val/imagenet_det256 --every 5 \\
        --grid sigma_space=0.35,0.45 sigma_chroma=0,4 --points 10 50
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chromalab.evaluation import metrics as M  # noqa: E402
from chromalab.evaluation.evaluate import collect_paths, gray_version, load_photo, to_image, to_tensor  # noqa: E402
from chromalab.evaluation.simulated_points import photo_rng, simulate_points  # noqa: E402
from chromalab.inference.colorizer import Colorizer  # noqa: E402
from chromalab.inference.propagation import PointGuide, Propagation  # noqa: E402


def parse_grid(items: list[str]) -> dict[str, list[float]]:
    grid = {}
    for item in items:
        name, values = item.split("=", 1)
        grid[name] = [float(v) for v in values.split(",")]
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/val/imagenet_det256")
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--every", type=int, default=5,
                        help="take every K-th photo (sorted by name): a sample of every class, not the first few")
    parser.add_argument("--gray", action="store_true", help="spread the points over the gray photo (a*b* = 0), not a model")
    parser.add_argument("--points", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--grid", nargs="*", default=[], help="NAME=V1,V2 over Propagation's fields")
    args = parser.parse_args()
    torch.set_num_threads(1)

    paths = collect_paths(args.data)[:: args.every][: args.limit]
    colorizer = Colorizer.load(args.model)
    truths, grays, predictions, point_sets = [], [], [], []
    started = time.perf_counter()
    for path in paths:
        truth = load_photo(path, 256)
        truth_t = to_tensor(truth)
        gray = to_image(gray_version(truth_t.unsqueeze(0))[0])
        truths.append(truth_t)
        grays.append(gray)
        predictions.append(torch.zeros(2, 1, 1) if args.gray else colorizer.predict_photos([gray])[0])
        point_sets.append(simulate_points(truth, max(args.points), photo_rng(path)))
    truth_u8 = torch.stack(truths)
    truth_lab = M.lab_of(truth_u8)
    print(f"{len(paths)} photos predicted in {time.perf_counter() - started:.1f} s", flush=True)

    def score(settings: Propagation | None, count: int) -> tuple[float, float]:
        outputs = []
        for gray, ab, points in zip(grays, predictions, point_sets):
            if settings is not None and count:
                ab = PointGuide(gray, settings).spread(ab, points[:count])
            outputs.append(to_tensor(Colorizer.merge(gray, ab)))
        out = torch.stack(outputs)
        return float(M.psnr(out, truth_u8).mean()), float(M.ciede2000(truth_lab, M.lab_of(out)).mean())

    base_psnr, base_de = score(None, 0)
    print(f"0 points: PSNR {base_psnr:.3f} dB, CIEDE2000 {base_de:.3f}")
    grid = parse_grid(args.grid)
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)) if names else [()]:
        settings = replace(Propagation(), **dict(zip(names, values)))
        cells = []
        for count in args.points:
            psnr, de = score(settings, count)
            cells.append(f"N={count}: {psnr - base_psnr:+.2f} dB, x{de / base_de:.3f}")
        label = ", ".join(f"{n}={v:g}" for n, v in zip(names, values)) or "defaults"
        print(f"{label:50s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
