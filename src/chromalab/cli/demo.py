"""chromalab demo: colorize the sample photos that ship with scikit-image, with the default model."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="colorize sample photos with the shipped model (no set-up, no internet)",
        description="Turns scikit-image's sample photos gray, colorizes them with the default "
        "model, and writes the results plus a side-by-side sheet (gray | colorized | original).",
    )
    parser.add_argument("--out", default="demo-output",
                        help="output folder (default: ./demo-output). If it already holds files, the "
                        "results go to the first new or empty OUT-2, OUT-3, ... instead")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into --out even if it holds files, replacing same-named results")
    parser.add_argument("--model", default=None, help="model to use (default: the shipped model)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import ImageOps

    from chromalab.atomic import check_outputs_free, first_free_folder
    from chromalab.data.images import open_rgb, save_image_atomic
    from chromalab.data.samples import sample_photo_paths
    from chromalab.inference.colorizer import Colorizer
    from chromalab.training.callbacks import grid_image

    photos = sample_photo_paths(include_gray=True)
    # A second demo (or a folder the user keeps other files in) never has its files replaced:
    # without --overwrite every run gets a folder of its own, as training runs do.
    if args.overwrite:
        out = Path(args.out)
        names = [f"{path.stem}-{kind}.png" for path in photos for kind in ("gray", "colorized")]
        check_outputs_free(out, [*names, "sheet.png"], overwrite=True)
    else:
        out = first_free_folder(Path(args.out))
    colorizer = Colorizer.load(args.model)
    rows = []
    for path in photos:
        original = open_rgb(path)
        gray = ImageOps.grayscale(original).convert("RGB")
        result = colorizer.colorize(gray)
        save_image_atomic(gray, out / f"{path.stem}-gray.png", overwrite=args.overwrite)
        save_image_atomic(result, out / f"{path.stem}-colorized.png", overwrite=args.overwrite)
        tiles = [im.resize((256, round(256 * im.height / im.width))) for im in (gray, result, original)]
        height = min(t.height for t in tiles)
        rows.append([np.asarray(t.crop((0, 0, 256, height)).resize((256, 192))) for t in tiles])
        print(f"  {path.name}: {original.width}x{original.height} -> {out / (path.stem + '-colorized.png')}")
    sheet = grid_image(rows, ["gray input", "chromalab", "original"])
    save_image_atomic(sheet, out / "sheet.png", overwrite=args.overwrite)
    print(f"demo results in {out.resolve()} (side by side: {out / 'sheet.png'})")
    return 0
