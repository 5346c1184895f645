"""Where a colorized photo's time goes: read, to-model, network, merge, write, per photo size.

    python benchmarks/pipeline.py [--model default] [--backend onnx] [--threads 2] [--repeats 5]

Colorizes a gray 768x512 Kodak photo and a 24-megapixel gray JPEG end to end, as
`chromalab colorize` does, and prints the median seconds of each stage and their shares, for
the fast full-resolution pipeline (chromalab.inference.fullres) and for the kornia reference
it replaced (its L* and Lab -> sRGB at full size, as before). The 24-MP job's peak memory is
measured in a child process, so the figure is that job's own.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dev" / "kodak24" / "kodim05.png"
STAGES = ("read", "to-model", "network", "merge", "write")


def reference_stages():
    """The kornia pipeline chromalab used before the fast one (for the ratio)."""
    from chromalab.color import denormalize_ab, float_to_uint8, lab_to_rgb, normalize_l, rgb_to_lab, uint8_to_float

    def to_tensor(image: Image.Image) -> torch.Tensor:
        return uint8_to_float(torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None])

    def to_model(image: Image.Image, size: int) -> torch.Tensor:
        small = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return normalize_l(rgb_to_lab(to_tensor(small))[:, :1])

    def merge(image: Image.Image, ab_small: torch.Tensor) -> np.ndarray:
        lightness = rgb_to_lab(to_tensor(image))[:, :1]
        ab = F.interpolate(ab_small, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        return float_to_uint8(lab_to_rgb(torch.cat([lightness, denormalize_ab(ab)], 1)))[0].permute(1, 2, 0).numpy()

    return to_model, merge


def fast_stages():
    from chromalab.inference.fullres import full_resolution_lightness, merge_full_resolution, model_input

    def merge(image: Image.Image, ab_small: torch.Tensor) -> np.ndarray:
        return merge_full_resolution(full_resolution_lightness(image), ab_small)

    return model_input, merge


def time_photo(colorizer, path: Path, pipeline: str, repeats: int) -> dict[str, float]:
    """Median seconds of each stage over ``repeats`` runs of one photo."""
    from chromalab.data.images import open_rgb, save_image_atomic

    to_model, merge = reference_stages() if pipeline == "reference" else fast_stages()
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with tempfile.TemporaryDirectory() as out:
        for repeat in range(repeats + 1):  # the first round warms up
            marks = [time.perf_counter()]
            image = open_rgb(path, keep_gray=True)  # as `chromalab colorize` reads photos
            marks.append(time.perf_counter())
            l_small = to_model(image, colorizer.spec.size)
            marks.append(time.perf_counter())
            ab_small = colorizer.predict_ab(l_small)
            marks.append(time.perf_counter())
            result = merge(image, ab_small)
            marks.append(time.perf_counter())
            save_image_atomic(Image.fromarray(result), Path(out) / f"out{repeat}.jpg")
            marks.append(time.perf_counter())
            if repeat:
                for stage, start, end in zip(STAGES, marks, marks[1:]):
                    times[stage].append(end - start)
    return {stage: statistics.median(values) for stage, values in times.items()}


def huge_gray_photo(folder: Path) -> Path:
    """A 6000x4000 one-channel JPEG (a scan's size and format) of the Kodak photo, with grain
    so that decoding and encoding cost what a real scan's do."""
    gray = Image.open(KODAK).convert("L").resize((6000, 4000), Image.Resampling.BICUBIC)
    grain = np.random.default_rng(0).normal(0.0, 4.0, (4000, 6000)).astype(np.float32)
    pixels = np.clip(np.asarray(gray, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    path = folder / "huge.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    return path


def peak_resident_mb() -> float:
    """This process's own peak resident memory (VmHWM: unlike getrusage's ru_maxrss, it is
    not inherited from the parent that started the process)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {bench!r})
import cv2, torch
torch.set_num_threads({threads})
cv2.setNumThreads({threads})
from pipeline import peak_resident_mb, time_photo
from chromalab.inference.colorizer import Colorizer
colorizer = Colorizer.load({model!r}, backend={backend!r})
before = peak_resident_mb()
stages = time_photo(colorizer, Path({path!r}), {pipeline!r}, repeats={repeats})
print(repr((stages, before, peak_resident_mb())))
"""


def report(label: str, stages: dict[str, float]) -> None:
    total = sum(stages.values())
    shares = ", ".join(f"{stage} {seconds:.4f} s ({seconds / total:.0%})" for stage, seconds in stages.items())
    print(f"{label}: {total:.4f} s end to end; {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-huge", action="store_true", help="skip the 24-megapixel photo")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    from chromalab.inference.colorizer import Colorizer

    colorizer = Colorizer.load(args.model, backend=args.backend)
    print(f"model {args.model} ({colorizer.backend_name}, runs at {colorizer.spec.size} px), "
          f"torch {torch.__version__}, {args.threads} threads")
    with tempfile.TemporaryDirectory() as folder:
        gray = Path(folder) / "kodim05-gray.png"
        Image.open(KODAK).convert("L").save(gray)
        results = {}
        for pipeline in ("reference", "fast"):
            results[pipeline] = time_photo(colorizer, gray, pipeline, args.repeats)
            report(f"768x512 gray, {pipeline:>9}", results[pipeline])
        ratio = sum(results["reference"].values()) / sum(results["fast"].values())
        print(f"768x512: fast pipeline {ratio:.1f}x the reference's speed")
        if args.skip_huge:
            return
        huge = huge_gray_photo(Path(folder))
        for pipeline in ("reference", "fast"):
            code = CHILD.format(bench=str(Path(__file__).parent), threads=args.threads, model=args.model,
                                backend=args.backend, path=str(huge), pipeline=pipeline, repeats=2)
            output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            stages, before, peak = eval(output.stdout.strip().splitlines()[-1])  # our own child's repr
            report(f"24 MP gray, {pipeline:>9}", stages)
            print(f"24 MP gray, {pipeline:>9}: peak memory {peak:.0f} MB ({before:.0f} MB with the model loaded)")


if __name__ == "__main__":
    main()
