"""Score a model at several decoding settings in one pass: annealed-mean temperatures
(classification models) or saturations and chroma smoothings (any model: its chroma times S,
then an edge-aware guided filter; see chromalab.inference.smoothing), at one or several
network input sizes (``--model-sizes``: the photo is resized to it for the network and the
a*b* brought back to the photo's size; default the size the model was trained and shipped at).

    nice -n 10 .venv/bin/python scripts/temperature_sweep.py MODEL --data DIR \
        [--temperatures 0.38,0.6,1.0 | --saturations 1,1.25,1.5 --smoothings off,0.03125:0.001] \
        [--model-sizes 128,192,256] [--metrics fid,colorfulness] [--out DIR]

The network runs once per setting (it is cheap next to Inception); the photos' ground-truth
features are computed once for all (``evaluate_models``). Pick the setting on photos held out
from *training* (e.g. MiniPlaces val for the scene models), never on the evaluation set. Writes
the usual report (metrics.md, metrics.json, per_image.csv, samples.png) to --out, which must
not hold one already unless --overwrite.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from chromalab.cli import setup_logging
from chromalab.errors import ChromalabError
from chromalab.evaluation.baselines import make_baselines
from chromalab.evaluation.evaluate import evaluate_models
from chromalab.evaluation.report import REPORT_FILES, check_outputs_free, markdown_table, write_report
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.smoothing import ChromaSmoothing


class AtTemperature:
    """A Colorizer that always decodes with one annealed-mean temperature (at one network size)."""

    def __init__(self, colorizer: Colorizer, temperature: float, model_size: int | None = None) -> None:
        self.colorizer, self.temperature, self.model_size = colorizer, temperature, model_size

    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None, **options: Any) -> list[Image.Image]:
        return self.colorizer.colorize_images(images, size=size or self.model_size, temperature=self.temperature,
                                              **options)


class AtSetting:
    """A Colorizer whose chroma is multiplied by one saturation and smoothed by one guided filter
    (what ``export --saturation`` and ``export --smoothing`` store), at one network size."""

    def __init__(self, colorizer: Colorizer, saturation: float, smoothing: ChromaSmoothing | None,
                 model_size: int | None = None) -> None:
        self.colorizer, self.saturation, self.smoothing = colorizer, saturation, smoothing
        self.model_size = model_size

    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None, **options: Any) -> list[Image.Image]:
        own = self.colorizer.saturation, self.colorizer.smoothing
        self.colorizer.saturation, self.colorizer.smoothing = self.saturation, self.smoothing
        try:
            return self.colorizer.colorize_images(images, size=size or self.model_size, **options)
        finally:
            self.colorizer.saturation, self.colorizer.smoothing = own


def parse_smoothings(text: str) -> list[ChromaSmoothing | None]:
    """'off,0.03125:0.001' -> [None, ChromaSmoothing(0.03125, 0.001)]"""
    settings: list[ChromaSmoothing | None] = []
    for part in text.split(","):
        if part == "off":
            settings.append(None)
            continue
        try:
            radius, eps = (float(value) for value in part.split(":"))
        except ValueError:
            raise ChromalabError(f"--smoothings {text!r}: expected off or RADIUS:EPS, separated by commas") from None
        settings.append(ChromaSmoothing(radius=radius, eps=eps))
    return settings


def setting_name(saturation: float, smoothing: ChromaSmoothing | None, model_size: int | None = None) -> str:
    name = f"S={saturation:g}"
    name = name if smoothing is None else f"{name} guided r={smoothing.radius:g} eps={smoothing.eps:g}"
    return name if model_size is None else f"{name} @{model_size}"


def parse_model_sizes(text: str | None) -> list[int | None]:
    """'128,192' -> [128, 192]; None -> [None] (the model's own size)."""
    if not text:
        return [None]
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ChromalabError(f"--model-sizes {text!r}: expected whole numbers separated by commas") from None
    if any(size < 16 or size % 8 for size in sizes):
        raise ChromalabError(f"--model-sizes {text!r}: each must be a multiple of 8, at least 16")
    return list(dict.fromkeys(sizes))


def parse_values(text: str, option: str, minimum_text: str, allow_zero: bool) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ChromalabError(f"{option} {text!r}: expected numbers separated by commas") from None
    if not all(math.isfinite(v) and (v > 0 or (allow_zero and v == 0)) for v in values):
        raise ChromalabError(f"{option} {text!r}: each must be {minimum_text}")
    return values


def sweep(args: argparse.Namespace) -> None:
    by_chroma = bool(args.saturations or args.smoothings)
    if by_chroma:
        saturations = parse_values(args.saturations or "1", "--saturations", "positive (1 = as trained)", allow_zero=False)
        smoothings = parse_smoothings(args.smoothings or "off")
    else:
        settings = parse_values(args.temperatures, "--temperatures", "0 (the mode) or positive", allow_zero=True)
    model_sizes = parse_model_sizes(args.model_sizes)
    if args.out:  # fail now, not after an hour of evaluation
        check_outputs_free(Path(args.out), REPORT_FILES, args.overwrite)
    colorizer = Colorizer.load(args.model, backend="auto" if by_chroma else "torch")
    models: dict[str, Any]
    if by_chroma:
        models = {setting_name(s, g, m): AtSetting(colorizer, s, g, m)
                  for m in model_sizes for g in smoothings for s in saturations}
    else:
        if not hasattr(colorizer.net, "temperature"):
            raise ChromalabError(f"{args.model}: not a classification model (no annealed-mean temperature)")
        models = {f"T={t:g}" + ("" if m is None else f" @{m}"): AtTemperature(colorizer, t, m)
                  for m in model_sizes for t in settings}
    models.update(make_baselines(["gray"]))
    # A bar on a terminal; otherwise evaluate logs a line every tenth of the photos.
    results = evaluate_models(models, args.data, size=args.size, limit=args.limit,
                              metrics=args.metrics.split(","), progress=sys.stderr.isatty())
    print(markdown_table(results))
    if args.out:
        write_report(results, Path(args.out), overwrite=args.overwrite,
                     title=f"{args.model}: {'saturation and smoothing' if by_chroma else 'annealed-mean temperature'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--temperatures", default="0.38,0.6,1.0")
    parser.add_argument("--saturations", default=None, help="e.g. 1,1.25,1.5 (instead of temperatures)")
    parser.add_argument("--smoothings", default=None,
                        help="e.g. off,0.03125:0.001 (guided-filter RADIUS:EPS; crossed with --saturations)")
    parser.add_argument("--model-sizes", default=None,
                        help="e.g. 128,192,256: network input sizes to try (default: the model's own)")
    parser.add_argument("--metrics", default="fid,colorfulness,colorfulness_truth,ciede2000,psnr")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace report files already in --out")
    args = parser.parse_args()
    setup_logging(verbose=False)
    try:
        sweep(args)
    except ChromalabError as error:
        print(f"temperature_sweep: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
