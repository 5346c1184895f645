"""Can FID's Inception run in bf16? FID of the shipped model on val, with features in fp32 and bf16.

    python benchmarks/inception_precision.py [--data DIR] [--limit N] [--model default] [--skip torch-fp32 ...]

Colorizes the photos once with the model (256 px), then computes the pool3 features of the
ground truths and of the colorized photos with each Inception path, timing them:

* onnxruntime, fp32: what ``chromalab evaluate`` uses on a CPU (the reference);
* TorchScript, fp32, channels-last;
* TorchScript under bf16 autocast (convolutions and matrix products in bf16, the rest fp32);
* TorchScript with its weights and activations cast to bf16.

Prints images/s, the FID and its change against the reference, and the largest feature
difference. The rule (docs/speed.md): bf16 features become the default only where FID moves by
less than 0.05; bf16 is timed only where the CPU has bf16 units (elsewhere it is emulated).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "val" / "imagenet_det256"
FID_TOLERANCE = 0.05


def load_pairs(data: Path, limit: int | None, model: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 256, 256) ground truths and the model's colorizations of their gray copies."""
    from chromalab.data.images import open_rgb
    from chromalab.inference.colorizer import Colorizer

    photos = sorted(p for p in data.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:limit]
    colorizer = Colorizer.load(model)
    truths, outputs = [], []
    for path in tqdm(photos, desc="colorizing", unit="photo"):
        image = open_rgb(path)
        truths.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
        outputs.append(torch.from_numpy(np.array(colorizer.colorize(image.convert("L"), size=256))).permute(2, 0, 1))
    return torch.stack(truths), torch.stack(outputs)


class Bf16Inception:
    """TorchScript Inception in bf16: ``autocast`` or every weight cast (``cast``)."""

    def __init__(self, mode: str) -> None:
        from chromalab.evaluation.fid import InceptionFeatures

        self.base = InceptionFeatures(backend="torch")
        self.mode = mode
        if mode == "cast":
            self.base.model = self.base.model.to(torch.bfloat16)

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        model = self.base.model

        def features(x: torch.Tensor) -> torch.Tensor:
            x = x.contiguous(memory_format=torch.channels_last)
            if self.mode == "cast":
                return model(x.to(torch.bfloat16)).float()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x).float()

        self.base._features = features  # type: ignore[method-assign]
        return self.base(images_u8)


def features_of(extractor, images: torch.Tensor, chunk: int = 32) -> tuple[np.ndarray, float]:
    """Features (N, 2048) and the images/s it took."""
    extractor(images[:2])  # warm-up: oneDNN picks its kernels on the first call
    start = time.perf_counter()
    parts = [extractor(images[i : i + chunk]) for i in range(0, len(images), chunk)]
    seconds = time.perf_counter() - start
    return torch.cat(parts).numpy(), len(images) / seconds


def fid_of(real: np.ndarray, fake: np.ndarray) -> float:
    from chromalab.evaluation.fid import FeatureStatistics, fid_from_statistics

    statistics = []
    for features in (real, fake):
        stats = FeatureStatistics()
        stats.update(features)
        statistics.append(stats)
    return fid_from_statistics(*statistics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default="default")
    parser.add_argument("--skip", nargs="*", default=[], choices=["torch-fp32", "bf16-autocast", "bf16-weights"],
                        help="paths not to time (the onnxruntime reference always runs)")
    args = parser.parse_args()

    from chromalab.evaluation.fid import InceptionFeatures
    from chromalab.precision import cpu_description, cpu_has_bf16

    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    truths, outputs = load_pairs(args.data, args.limit, args.model)
    paths = {"onnxruntime fp32 (reference)": lambda: InceptionFeatures(backend="onnx")}
    if "torch-fp32" not in args.skip:
        paths["TorchScript fp32"] = lambda: InceptionFeatures(backend="torch")
    if cpu_has_bf16():
        if "bf16-autocast" not in args.skip:
            paths["TorchScript bf16 autocast"] = lambda: Bf16Inception("autocast")
        if "bf16-weights" not in args.skip:
            paths["TorchScript bf16 weights"] = lambda: Bf16Inception("cast")
    else:
        print("no bf16 units: bf16 would be emulated, not timed")
    print(f"\n{len(truths)} photos of {args.data}, model {args.model}\n")
    print("| Inception | images/s | FID | change | largest feature difference |")
    print("|---|---:|---:|---:|---:|")
    reference: tuple[np.ndarray, np.ndarray, float] | None = None
    for name, make in paths.items():
        extractor = make()
        real, real_speed = features_of(extractor, truths)
        fake, fake_speed = features_of(extractor, outputs)
        fid = fid_of(real, fake)
        speed = 2 * len(truths) / (len(truths) / real_speed + len(outputs) / fake_speed)
        if reference is None:
            reference = (real, fake, fid)
        change = fid - reference[2]
        largest = max(np.abs(real - reference[0]).max(), np.abs(fake - reference[1]).max())
        verdict = "" if name == next(iter(paths)) else (" (within" if abs(change) < FID_TOLERANCE else " (over") + f" {FID_TOLERANCE})"
        print(f"| {name} | {speed:.2f} | {fid:.4f} | {change:+.4f}{verdict} | {largest:.4f} |", flush=True)


if __name__ == "__main__":
    main()
