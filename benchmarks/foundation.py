"""Speed and memory of the foundation: training and inference throughput, end-to-end photos.

    python benchmarks/foundation.py [--model default] [--train-model unet] [--backend torch]

Prints training images/s at 128 px, inference images/s at 256 px (batched), megapixels/s and
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


def training_speed(model: str, size: int = 128, batch: int = 16, steps: int = 5, precision: str = "fp32") -> float:
    """Images/s of one training step (L1), as Lightning runs it in ``32-true`` or ``bf16-mixed``:
    bf16 autocast around the network, channels-last model and batches, loss in fp32."""
    from contextlib import nullcontext

    from chromalab.training.config import TrainConfig
    from chromalab.training.trainer import build_objective

    objective = build_objective(TrainConfig.from_dict({"model": {"name": model}, "data": {"size": size}}))
    objective.train()
    bf16 = precision == "bf16"
    if bf16:
        objective.net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(objective.net.parameters(), lr=1e-4)
    images = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8)
    for step in range(steps + 2):
        if step == 2:
            start = time.perf_counter()
        l_norm, target, _ = objective.prepare_batch(images)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            prediction = objective.net(l_norm)
        loss = objective.criterion(prediction, target, l_norm)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


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
    parser.add_argument("--train-model", default="unet", help="registry name for the training figure")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--skip-huge", action="store_true", help="skip the 24-megapixel memory test")
    args = parser.parse_args()
    from chromalab.inference.colorizer import Colorizer

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    from chromalab.checkpoint import resolve_model_path
    from chromalab.inference.precision import int8_onnx_path
    from chromalab.precision import cpu_has_bf16

    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]  # emulated bf16 is not worth timing
    print(f"bf16 units: {cpu_has_bf16()}; GEMM 2048^2 peak: fp32 {gemm_peak(torch.float32):.0f} GFLOP/s"
          + (f", bf16 {gemm_peak(torch.bfloat16):.0f} GFLOP/s" if cpu_has_bf16() else ""))
    for precision in precisions:
        speed = training_speed(args.train_model, precision=precision)
        print(f"training   {args.train_model:>8} @128: {speed:6.1f} images/s (batch 16, {precision})")
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
