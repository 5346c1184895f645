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
* frames/s of the whole pipeline (decode, network, smoothing, merge, encode).

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

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "dev"
DEFAULT_MODEL = ROOT / "runs" / "default-effunet"


def camera_path(photo: Image.Image, frames: int, width: int, height: int, grain: float,
                seed: int) -> list[np.ndarray]:
    """Gray frames of a slow pan (a third of the photo) with a 1.0 -> 1.25 zoom."""
    gray = photo.convert("L")
    aspect = width / height
    view_h = min(gray.height * 0.7, gray.width * 0.7 / aspect)
    view_w = view_h * aspect
    rng = np.random.default_rng(seed)
    out = []
    for index in range(frames):
        t = index / max(1, frames - 1)
        zoom = 1.0 + 0.25 * t
        w, h = view_w / zoom, view_h / zoom
        cx = gray.width * (0.35 + 0.3 * t)
        cy = gray.height * 0.5 + 0.05 * gray.height * np.sin(np.pi * t)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        frame = np.asarray(gray.resize((width, height), Image.Resampling.BILINEAR, box=box), np.float32)
        if grain:
            frame = frame + rng.normal(0.0, grain, size=frame.shape)
        frame = np.clip(frame, 0, 255).round().astype(np.uint8)
        out.append(np.repeat(frame[..., None], 3, axis=2))
    return out


def write_clip(path: Path, frames: list[np.ndarray], fps: int) -> None:
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=fps, options={"qp": "0", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode(None))


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
    print(f"{'clip':<28}{'temporal':>9}{'flicker frames':>16}{'flicker encoded':>17}{'frames/s':>10}")
    totals: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    curves: dict[bool, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="chromalab-flicker-") as folder:
        for number, photo_path in enumerate(photos):
            clip = Path(folder) / f"clip{number}.mp4"
            photo = open_rgb(photo_path, draft_size=2 * max(args.width, args.height))
            write_clip(clip, camera_path(photo, args.frames, args.width, args.height, args.grain, number), args.fps)
            for temporal in (False, True):
                target = Path(folder) / f"clip{number}-{'on' if temporal else 'off'}.mp4"
                produced = FlickerMeter()
                started = time.perf_counter()
                report = colorize_video(colorizer, clip, target, size=args.size, batch_size=args.batch_size,
                                        temporal=temporal, on_frame=produced.add)
                seconds = time.perf_counter() - started
                encoded = FlickerMeter()
                for frame in read_frames(target):
                    encoded.add(frame)
                row = (produced.value, encoded.value, report.frames / seconds)
                totals[temporal].append(row)
                if number == 0:
                    curves[temporal] = produced.per_frame
                name = str(photo_path.relative_to(args.photos))
                print(f"{name[-27:]:<28}{'on' if temporal else 'off':>9}{row[0]:>16.3f}{row[1]:>17.3f}"
                      f"{row[2]:>10.2f}")
    for temporal in (False, True):
        means = np.mean(totals[temporal], axis=0)
        print(f"{'mean':<28}{'on' if temporal else 'off':>9}{means[0]:>16.3f}{means[1]:>17.3f}{means[2]:>10.2f}")
    off, on = np.mean(totals[False], axis=0), np.mean(totals[True], axis=0)
    print(f"temporal consistency: flicker x{on[0] / off[0]:.2f} (frames), x{on[1] / off[1]:.2f} (encoded); "
          f"speed x{on[2] / off[2]:.2f}")
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
