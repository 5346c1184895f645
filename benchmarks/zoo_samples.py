"""Sample sheets of trained models: gray | one or more colorizations | truth, per photo.

    nice -n 10 .venv/bin/python benchmarks/zoo_samples.py runs/vae64 --name vae \
        --photos ../shared/data/val/imagenet_det256 --count 6 --samples 3 --out docs/images

Stochastic models (vae, unet-vae, diffusion) get ``--samples`` columns, one per generator
seed, so the sheet shows how different their colorizations are; the mean absolute a*b*
difference between samples is printed. Writes ``<out>/zoo-<name>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from rich.progress import track

from chromalab.color import rgb_to_lab
from chromalab.data.folder import index_folder
from chromalab.inference.colorizer import Colorizer, image_to_tensor
from chromalab.training.callbacks import grid_image


def tile(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or model file")
    parser.add_argument("--name", required=True, help="family name for the file: zoo-NAME.png")
    parser.add_argument("--photos", required=True, help="folder of color photos (--count of them, evenly spaced in name order)")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--samples", type=int, default=1, help="colorizations per photo (seeds 0..N-1)")
    parser.add_argument("--size", type=int, default=None, help="network resolution (default: the model's)")
    parser.add_argument("--tile", type=int, default=128, help="tile size in the sheet")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="predict() option, e.g. sampler=ddpm, steps=100, temperature=0.5 (repeatable)")
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    options = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.option)}

    colorizer = Colorizer.load(args.run)
    # Evenly spaced through the sorted folder: ImageNet-style names group by class.
    every = sorted(index_folder(args.photos).files)
    paths = every[:: max(1, len(every) // args.count)][: args.count]
    photos = [Image.open(path).convert("RGB") for path in paths]
    grays = [photo.convert("L").convert("RGB") for photo in photos]
    columns: list[list[Image.Image]] = []
    for seed in track(range(args.samples), description=f"colorizing ({args.name})"):
        generator = torch.Generator().manual_seed(seed)
        columns.append(colorizer.colorize_images(grays, size=args.size, generator=generator, **options))

    rows = [[tile(gray, args.tile)] + [tile(column[i], args.tile) for column in columns] + [tile(photos[i], args.tile)]
            for i, gray in enumerate(grays)]
    labels = ["gray"] + [f"seed {s}" if args.samples > 1 else "colorized" for s in range(args.samples)] + ["truth"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid_image(rows, labels).save(out / f"zoo-{args.name}.png", optimize=True)
    print(f"wrote {out / f'zoo-{args.name}.png'}")

    def ab(images: list[Image.Image]) -> torch.Tensor:
        return torch.cat([rgb_to_lab(image_to_tensor(image))[:, 1:] for image in images])

    truth = ab(photos)
    for seed, column in enumerate(columns):
        error = (ab(column) - truth).abs().mean()
        print(f"seed {seed}: mean |ab - truth| = {error:.2f} (Lab units)")
    if len(columns) > 1:
        spread = torch.stack([ab(column) for column in columns]).std(0).mean()
        print(f"spread between samples: mean std of a*b* over seeds = {spread:.2f} (Lab units)")


if __name__ == "__main__":
    main()
