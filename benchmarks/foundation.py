"""Speed and memory of the foundation: training and inference throughput, end-to-end photos.

    python benchmarks/foundation.py [--model default] [--train-models effunet unet effclassify] [--backend torch]

Prints training images/s at 128 px per precision (with the achieved GFLOP/s beside the same-dtype
GEMM peak), inference images/s at 256 px (batched), megapixels/s and
seconds per photo end to end (load, infer at 256, save) on the 768x512 Kodak photos, the peak
resident memory, and the memory of colorizing a 24-megapixel photo (in a child process, so the
figure is that job's own peak).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from pipeline import peak_resident_mb

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dev" / "kodak24"


def training_speed(model: str, size: int = 128, batch: int = 16, steps: int = 5, precision: str = "fp32") -> tuple[float, float]:
    """Images/s and achieved GFLOP/s of Lightning's training step at ``size`` px, in ``32-true``
    or ``bf16-mixed`` (bf16 autocast around the network, channels-last, losses in fp32).

    FLOPs: 3x the network's forward pass (backward ~2x forward, the usual convention), counted by
    torch's FlopCounterMode (a multiply-add is 2). Its count of ``convolution_backward`` is not
    used: it ignores the groups of depthwise convolutions (effunet: 10.8 GFLOPs against a 0.5
    GFLOP forward), which would put the achieved figure above the GEMM peak."""
    from zoo import build_objective, count_flops, training_speed as lightning_speed

    torch.manual_seed(0)
    objective = build_objective(model, size, batch)
    flops = 3 * batch * count_flops(lambda: objective.net(torch.zeros(1, 1, size, size)))
    lightning = {"fp32": "32-true", "bf16": "bf16-mixed"}[precision]
    speed = lightning_speed(objective, size, batch, warmup=2, steps=steps, precision=lightning)
    return speed, flops * speed / batch


def gemm_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """GFLOP/s of an n x n matrix product in ``dtype``: the ceiling the networks are measured against."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 2 * n**3 * 5 / (time.perf_counter() - start) / 1e9


def inference_speed(colorizer, size: int = 256, batch: int = 8, rounds: int = 5) -> float:
    l_norm = torch.rand(batch, 1, size, size) * 2 - 1
    colorizer.predict_ab(l_norm)
    start = time.perf_counter()
    for _ in range(rounds):
        colorizer.predict_ab(l_norm)
    return batch * rounds / (time.perf_counter() - start)


def end_to_end(model: str, backend: str) -> tuple[float, float]:
    """Seconds per photo and megapixels/s for `chromalab colorize` work on the Kodak photos."""
    from chromalab.data.images import open_rgb, save_image_atomic
    from chromalab.inference.colorizer import Colorizer

    colorizer = Colorizer.load(model, backend=backend)
    photos = sorted(DEV.glob("*.png"))[:12]
    if not photos:
        raise SystemExit(f"no photos in {DEV}")
    with tempfile.TemporaryDirectory() as out:
        colorizer.colorize(open_rgb(photos[0]), size=256)  # warm-up
        start = time.perf_counter()
        pixels = 0
        for path in photos:
            image = open_rgb(path)
            result = colorizer.colorize(image, size=256)
            save_image_atomic(result, Path(out) / f"{path.stem}.jpg")
            pixels += image.width * image.height
        elapsed = time.perf_counter() - start
    return elapsed / len(photos), pixels / elapsed / 1e6


HUGE_PHOTO_JOB = """
import sys
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from pipeline import peak_resident_mb
from chromalab.inference.colorizer import Colorizer
from chromalab.data.images import open_rgb, save_image_atomic
before = peak_resident_mb()
colorizer = Colorizer.load(sys.argv[1], backend=sys.argv[2])
photo = Path(sys.argv[4])
result = colorizer.colorize(open_rgb(photo, keep_gray=True), size=256)
save_image_atomic(result, photo.with_name("out.jpg"))
print(result.size, before, peak_resident_mb())
"""


def huge_photo_memory(model: str, backend: str) -> str:
    """The 24-MP job's own peak (VmHWM of a child that only loads the model and colorizes)."""
    from pipeline import huge_gray_photo

    with tempfile.TemporaryDirectory() as folder:
        photo = huge_gray_photo(Path(folder))
        command = [sys.executable, "-c", HUGE_PHOTO_JOB, model, backend, str(Path(__file__).parent), str(photo)]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="default", help="model for the inference figures")
    parser.add_argument("--train-models", nargs="+", default=["effunet", "unet", "effclassify"],
                        help="registry names for the training figures")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--skip-huge", action="store_true", help="skip the 24-megapixel memory test")
    parser.add_argument("--training-only", action="store_true", help="only the GEMM peaks and training figures")
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps per model and precision")
    parser.add_argument("--train-batch", type=int, default=16, help="training batch size (the recipes use 32)")
    args = parser.parse_args()
    from chromalab.inference.colorizer import Colorizer

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    from chromalab.checkpoint import resolve_model_path
    from chromalab.inference.precision import int8_onnx_path
    from chromalab.precision import cpu_has_bf16

    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]  # emulated bf16 is not worth timing
    peaks = {"fp32": gemm_peak(torch.float32)}
    if cpu_has_bf16():
        peaks["bf16"] = gemm_peak(torch.bfloat16)
    print(f"bf16 units: {cpu_has_bf16()}; GEMM 2048^2 peak: "
          + ", ".join(f"{precision} {peak:.0f} GFLOP/s" for precision, peak in peaks.items()))
    for model in args.train_models:
        speeds = {}
        for precision in precisions:
            speeds[precision], gflops = training_speed(model, batch=args.train_batch, precision=precision,
                                                       steps=args.train_steps)
            print(f"training {model:>11} @128: {speeds[precision]:6.1f} images/s (batch {args.train_batch}, {precision}), "
                  f"{gflops:5.1f} GFLOP/s = {gflops / peaks[precision]:4.0%} of the {precision} GEMM peak")
        if "bf16" in speeds:
            print(f"training {model:>11} @128: bf16 / fp32 = {speeds['bf16'] / speeds['fp32']:.2f}x")
    if args.training_only:
        return
    runs = [("torch", "fp32"), ("onnx", "fp32")] + ([("torch", "bf16")] if cpu_has_bf16() else [])
    if int8_onnx_path(resolve_model_path(args.model)).is_file():
        runs.append(("onnx", "int8"))
    for backend, precision in runs:
        colorizer = Colorizer.load(args.model, backend=backend, precision=precision)
        print(f"inference  {args.model:>8} @256: {inference_speed(colorizer):6.1f} images/s "
              f"(batch 8, {backend}, {precision})")
    for backend in ("torch", "onnx"):
        seconds, megapixels = end_to_end(args.model, backend)
        print(f"end to end {args.model:>8} 768x512: {seconds:6.3f} s/photo, {megapixels:5.2f} MP/s "
              f"(load + infer at 256 + save JPEG, {backend})")
    print(f"peak memory of this process: {peak_resident_mb():.0f} MB")
    if not args.skip_huge:
        size, before, after = huge_photo_memory(args.model, args.backend).rsplit(" ", 2)
        print(f"24-megapixel photo {size}: peak memory {float(after):.0f} MB "
              f"({float(before):.0f} MB before loading the model)")


if __name__ == "__main__":
    main()
