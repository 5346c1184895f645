"""Score a classification model at several annealed-mean temperatures in one pass.

    nice -n 10 .venv/bin/python scripts/temperature_sweep.py MODEL --data DIR \
        [--temperatures 0.38,0.6,1.0] [--metrics fid,colorfulness,ciede2000] [--out REPORT_DIR]

The network runs once per temperature (its logits are cheap next to Inception); the photos'
ground-truth features are computed once for all (``evaluate_models``). Pick T on photos held
out from *training* (e.g. the run's own validation split), never on the evaluation set. Writes
the usual report (metrics.md, metrics.json, per_image.csv, samples.png) to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from chromalab.evaluation.baselines import make_baselines
from chromalab.evaluation.evaluate import evaluate_models
from chromalab.evaluation.report import markdown_table, write_report
from chromalab.inference.colorizer import Colorizer


class AtTemperature:
    """A Colorizer that always decodes with one annealed-mean temperature."""

    def __init__(self, colorizer: Colorizer, temperature: float) -> None:
        self.colorizer, self.temperature = colorizer, temperature

    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None, **options: Any) -> list[Image.Image]:
        return self.colorizer.colorize_images(images, size=size, temperature=self.temperature, **options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--temperatures", default="0.38,0.6,1.0")
    parser.add_argument("--metrics", default="fid,colorfulness,colorfulness_truth,ciede2000,psnr")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    colorizer = Colorizer.load(args.model, backend="torch")
    if not hasattr(colorizer.net, "temperature"):
        print(f"{args.model}: not a classification model (no annealed-mean temperature)", file=sys.stderr)
        return 2
    models: dict[str, Any] = {f"T={float(t):g}": AtTemperature(colorizer, float(t)) for t in args.temperatures.split(",")}
    models.update(make_baselines(["gray"]))
    results = evaluate_models(models, args.data, size=args.size, limit=args.limit,
                              metrics=args.metrics.split(","), progress=sys.stderr.isatty())
    print(markdown_table(results))
    if args.out:
        write_report(results, Path(args.out), overwrite=True, title=f"{args.model}: annealed-mean temperature")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
