"""Flicker and speed of video colorization, with and without temporal consistency.

    nice -n 10 .venv/bin/python benchmarks/flicker.py [--model RUN_OR_FILE] [--photos DIR]
        [--clips 3] [--frames 48] [--width 320] [--height 240] [--grain 0] [--threads N]
        [--plot flicker.png]

Makes test clips from real photos (/work/shared/data/dev by default): a camera panning and
zooming slowly over each photo, in grayscale (old footage), optionally with film grain, 24 fps,
encoded losslessly. Colorizes each clip with ``--no-temporal`` and with temporal consistency
(the default) and prints, per clip and on average:

* flicker: mean |Δab| (Lab units) between consecutive output frames over the pixels whose L*
  changes by less than 1 (there, any change of color is flicker, not motion); measured on
  the colorized frames ("frames") and on the decoded H.264 output ("encoded", which adds
  the codec's own chroma noise);
* ΔE00 to truth: mean CIEDE2000 of the colorized frames against the photo's real colors
  (the clips are made from color photos), so smoothing that smears or lags colors shows up;
* frames/s of the whole pipeline (decode, network, smoothing, merge, encode), and the CPU
  seconds it used per frame (steadier than wall time on a busy machine); finally the CPU cost
  of the temporal smoother alone.

With ``--plot`` it also draws the per-frame flicker of the first clip, both ways, as a PNG.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "dev"
DEFAULT_MODEL = ROOT / "runs" / "default-effunet"


def camera_path(photo: Image.Image, frames: int, width: int, height: int, grain: float,
                seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(gray frames, true color frames) of a slow pan (a third of the photo), 1.0 -> 1.25 zoom."""
    gray = photo.convert("L")
    aspect = width / height
    view_h = min(gray.height * 0.7, gray.width * 0.7 / aspect)
    view_w = view_h * aspect
    rng = np.random.default_rng(seed)
    out, truth = [], []
    for index in range(frames):
        t = index / max(1, frames - 1)
        zoom = 1.0 + 0.25 * t
        w, h = view_w / zoom, view_h / zoom
        cx = gray.width * (0.35 + 0.3 * t)
        cy = gray.height * 0.5 + 0.05 * gray.height * np.sin(np.pi * t)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        frame = np.asarray(gray.resize((width, height), Image.Resampling.BILINEAR, box=box), np.float32)
        truth.append(np.asarray(photo.resize((width, height), Image.Resampling.BILINEAR, box=box)))
        if grain:
            frame = frame + rng.normal(0.0, grain, size=frame.shape)
        frame = np.clip(frame, 0, 255).round().astype(np.uint8)
        out.append(np.repeat(frame[..., None], 3, axis=2))
    return out, truth


class TruthError:
    """Mean CIEDE2000 of the colorized frames against the true colors (catches ghosting)."""

    def __init__(self, truth: list[np.ndarray]) -> None:
        self.truth_lab = [rgb2lab(frame / 255.0) for frame in truth]
        self.errors: list[float] = []

    def add(self, rgb: np.ndarray) -> None:
        reference = self.truth_lab[len(self.errors)]
        self.errors.append(float(deltaE_ciede2000(rgb2lab(rgb / 255.0), reference).mean()))

    @property
    def value(self) -> float:
        return float(np.mean(self.errors))


def write_clip(path: Path, frames: list[np.ndarray], fps: int) -> None:
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=fps, options={"qp": "0", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode(None))


def smoother_cost(frames: list[np.ndarray], size: int) -> float:
    """CPU milliseconds per frame of TemporalSmoother alone (two Farnebäck flows, warps, blend)."""
    from chromalab.inference.fullres import model_input
    from chromalab.inference.video import TemporalSmoother

    smoother = TemporalSmoother()
    inputs = [model_input(Image.fromarray(frame), size) for frame in frames]
    ab = torch.zeros(1, 2, size, size)
    started = time.process_time()
    for l_norm in inputs:
        smoother(l_norm, ab)
    return (time.process_time() - started) / len(inputs) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="run folder or model file")
    parser.add_argument("--photos", default=str(DEFAULT_PHOTOS))
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--grain", type=float, default=0.0, help="film grain std (0-255 scale)")
    parser.add_argument("--size", type=int, default=None, help="network resolution (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--plot", default=None, help="write per-frame flicker of the first clip here (PNG)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from chromalab.data.images import is_image_path, open_rgb
    from chromalab.inference.colorizer import Colorizer
    from chromalab.inference.video import FlickerMeter, colorize_video, read_frames

    colorizer = Colorizer.load(args.model)
    found = sorted(p for p in Path(args.photos).rglob("*") if p.is_file() and is_image_path(p))
    if not found:
        raise SystemExit(f"{args.photos}: no photos")
    # Spread over the folder (Kodak and McMaster in the dev set), the same ones every run.
    photos = [found[i] for i in np.linspace(0, len(found) - 1, min(args.clips, len(found))).round().astype(int)]
    print(f"model: {args.model} ({colorizer.spec.name}, {args.size or colorizer.spec.size} px)  "
          f"clips: {len(photos)} x {args.frames} frames {args.width}x{args.height} @ {args.fps} fps, "
          f"grain {args.grain}  torch threads: {torch.get_num_threads()}")
    print(f"{'clip':<28}{'temporal':>9}{'flicker frames':>16}{'flicker encoded':>17}{'ΔE00 to truth':>15}"
          f"{'frames/s':>10}{'CPU s/frame':>13}")
    totals: dict[bool, list[tuple[float, float, float, float, float]]] = {True: [], False: []}
    curves: dict[bool, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="chromalab-flicker-") as folder:
        for number, photo_path in enumerate(photos):
            clip = Path(folder) / f"clip{number}.mp4"
            photo = open_rgb(photo_path, draft_size=2 * max(args.width, args.height))
            gray_frames, true_frames = camera_path(photo, args.frames, args.width, args.height, args.grain, number)
            if number == 0:
                first_clip_gray = gray_frames
            write_clip(clip, gray_frames, args.fps)
            for temporal in (False, True):
                target = Path(folder) / f"clip{number}-{'on' if temporal else 'off'}.mp4"
                produced, error = FlickerMeter(), TruthError(true_frames)
                frames: list[np.ndarray] = []
                started, cpu_started = time.perf_counter(), time.process_time()
                report = colorize_video(colorizer, clip, target, size=args.size, batch_size=args.batch_size,
                                        temporal=temporal, on_frame=frames.append)
                seconds = time.perf_counter() - started  # the measurements below are not timed
                cpu_seconds = time.process_time() - cpu_started
                for frame in frames:
                    produced.add(frame)
                    error.add(frame)
                encoded = FlickerMeter()
                for frame in read_frames(target):
                    encoded.add(frame)
                row = (produced.value, encoded.value, error.value, report.frames / seconds,
                       cpu_seconds / report.frames)
                totals[temporal].append(row)
                if number == 0:
                    curves[temporal] = produced.per_frame
                name = str(photo_path.relative_to(args.photos))
                print(f"{name[-27:]:<28}{'on' if temporal else 'off':>9}{row[0]:>16.3f}{row[1]:>17.3f}"
                      f"{row[2]:>15.2f}{row[3]:>10.2f}{row[4]:>13.3f}")
    for temporal in (False, True):
        means = np.mean(totals[temporal], axis=0)
        print(f"{'mean':<28}{'on' if temporal else 'off':>9}{means[0]:>16.3f}{means[1]:>17.3f}{means[2]:>15.2f}"
              f"{means[3]:>10.2f}{means[4]:>13.3f}")
    off, on = np.mean(totals[False], axis=0), np.mean(totals[True], axis=0)
    print(f"temporal consistency: flicker x{on[0] / off[0]:.2f} (frames), x{on[1] / off[1]:.2f} (encoded); "
          f"ΔE00 to truth {on[2] - off[2]:+.2f}; speed x{on[3] / off[3]:.2f}")
    print(f"smoother alone: {smoother_cost(first_clip_gray, args.size or colorizer.spec.size):.1f} ms CPU per frame "
          f"at {args.size or colorizer.spec.size} px")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 3.2), dpi=120)
        for temporal, label in ((False, "--no-temporal"), (True, "temporal consistency")):
            axis.plot(range(1, len(curves[temporal]) + 1), curves[temporal], label=label)
        axis.set_xlabel("frame")
        axis.set_ylabel("mean |Δab| where L* is steady")
        axis.set_title(f"flicker, {photos[0].name}")
        axis.legend()
        figure.tight_layout()
        figure.savefig(args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
