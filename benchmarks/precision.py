"""Which inference precision keeps the quality, and how much faster is it?

    python benchmarks/precision.py [--model default] [--data ../shared/data/val/imagenet_det256]
        [--limit N] [--calibration ../corpus/train] [--out reports/precision]

Scores the model in fp32 (onnxruntime, the reference), int8 (onnxruntime, static QDQ) and bf16
(PyTorch autocast) on the same photos in one pass (FID, CIEDE2000, colorfulness, |ΔL*|), then
times the network alone (batch 16 at 128 and 256 px) and a whole 768x512 photo in each.
Prints the rule's verdict: of the precisions whose FID is within 0.5 of fp32's and whose mean
CIEDE2000 is within 0.2 (issue #18), the fastest per 768x512 photo end to end (what a user
waits for; the network alone can rank otherwise: bf16 on an AVX-512 BF16 EPYC is faster at 256
px and twice as slow per photo); that is what ``chromalab export --auto-precision`` should
record. bf16 is only timed where the CPU has bf16 units (elsewhere it is emulated).

The int8 graph is the model's ``<stem>.int8.onnx`` if it exists; otherwise it is made in a
temporary folder from --calibration photos (300, spread over the folder).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from chromalab.checkpoint import resolve_model_path
from chromalab.data.folder import list_images
from chromalab.evaluation.evaluate import evaluate_models
from chromalab.evaluation.report import markdown_table
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.onnx_backend import cached_onnx_path, export_onnx
from chromalab.inference.precision import CALIBRATION_PHOTOS, int8_onnx_path, quantize_int8
from chromalab.precision import cpu_description, cpu_has_bf16

FID_TOLERANCE = 0.5
CIEDE_TOLERANCE = 0.2


def best_of(function: Callable[[], Any], repeats: int = 5) -> float:
    function()  # warm-up: graph optimization, allocator, oneDNN kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def int8_colorizer(model: str, calibration: Path | None, workdir: Path) -> Colorizer:
    """The model in int8: its own int8 graph, or one quantized here from calibration photos."""
    model_file = resolve_model_path(model)
    if int8_onnx_path(model_file).is_file():
        return Colorizer.load(model, precision="int8")
    if calibration is None:
        raise SystemExit(f"{model_file}: no int8 graph beside it; pass --calibration DIR to make one")
    copy = workdir / model_file.name
    shutil.copy(model_file, copy)
    fp32_graph = cached_onnx_path(model_file)
    if not fp32_graph.is_file():
        fp32_graph = export_onnx(Colorizer.load(model, backend="torch").net, workdir / "fp32.onnx")
    photos = list_images(calibration)
    photos = photos[:: max(1, len(photos) // CALIBRATION_PHOTOS)][:CALIBRATION_PHOTOS]
    quantize_int8(fp32_graph, int8_onnx_path(copy), photos, Colorizer.load(model).spec.size)
    return Colorizer.load(copy, precision="int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="../shared/data/val/imagenet_det256")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--calibration", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the quality table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        colorizers = {
            "fp32": Colorizer.load(args.model, backend="onnx", precision="fp32"),
            "int8": int8_colorizer(args.model, args.calibration, Path(workdir)),
        }
        if cpu_has_bf16():
            colorizers["bf16"] = Colorizer.load(args.model, backend="torch", precision="bf16")
        header = (f"# {args.model} on {args.data}; bf16 units: {cpu_has_bf16()}; {args.threads} threads; "
                  f"CPU: {cpu_description()}\n")
        print(header)
        results = evaluate_models(colorizers, args.data, limit=args.limit, progress=sys.stderr.isatty(),
                                  metrics=["fid", "ciede2000", "colorfulness", "delta_l"])
        table = markdown_table(results)
        print(table)
        quality = {r.name: r.summary for r in results}

        photo = Image.open(list_images(args.data)[0]).convert("L").resize((768, 512))
        speed_rows, photo_seconds = [], {}
        for name, colorizer in colorizers.items():
            row = [name]
            for size in (128, 256):
                batch = torch.rand(16, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
                with torch.inference_mode():
                    seconds = best_of(lambda: colorizer.backend(batch))
                row.append(f"{16 / seconds:.1f}")
            photo_seconds[name] = best_of(lambda: colorizer.colorize(photo))
            row.append(f"{photo_seconds[name] * 1000:.1f}")
            speed_rows.append(row)
        speed_table = "\n".join(
            ["| precision | network img/s @128 (batch 16) | network img/s @256 | 768x512 photo, ms |",
             "|---|---:|---:|---:|"] + ["| " + " | ".join(row) + " |" for row in speed_rows])
        print("\n" + speed_table)

    reference = quality["fp32"]
    keeps = [name for name in colorizers if abs(quality[name]["fid"] - reference["fid"]) <= FID_TOLERANCE
             and abs(quality[name]["ciede2000"] - reference["ciede2000"]) <= CIEDE_TOLERANCE]
    choice = min(keeps, key=lambda name: photo_seconds[name])
    verdict = (f"\nauto: {choice} (fastest per 768x512 photo of those within FID ±{FID_TOLERANCE} and CIEDE2000 "
               f"±{CIEDE_TOLERANCE} of fp32: {', '.join(keeps)})")
    print(verdict)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.exists():
            raise SystemExit(f"{args.out}: exists; choose another --out")
        args.out.write_text(header + "\n" + table + "\n\n" + speed_table + "\n" + verdict + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
