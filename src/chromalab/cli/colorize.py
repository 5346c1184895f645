"""chromalab colorize INPUT... --out DIR"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from chromalab.errors import ChromalabError

if TYPE_CHECKING:
    from rich.progress import Task

    from chromalab.inference.colorizer import AbTransform, Colorizer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "colorize", help="colorize photos (files, folders, globs) at full resolution",
        description="Colorize photos at their full resolution. Folders are searched recursively "
        "and mirrored under --out. Inputs are never modified; existing outputs are kept unless "
        "--overwrite.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--model", default=None, help="shipped model name, model file or run folder (default: the shipped model)")
    parser.add_argument("--out", default="colorized", help="output folder (default: ./colorized)")
    parser.add_argument("--size", type=int, default=None, help="resolution the network runs at (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="photos per forward pass (default: 32 photos, fewer once they hold 30 "
                        "megapixels; 8 video frames or sampled photos)")
    parser.add_argument("--format", default=None, choices=["png", "jpg", "jpeg", "tiff", "bmp", "webp"],
                        help="output format (default: same as the input)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                        help="inference engine: onnx (onnxruntime; exported once, then cached), torch, "
                        "or auto (onnx when an export exists, else torch)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                        help="what the network computes in: fp32, bf16 (PyTorch, CPUs with bf16 units), "
                        "int8 (onnxruntime, needs an int8 export) or auto (the model's measured choice, "
                        "else fp32)")
    parser.add_argument("--smoothing", default=None, metavar="RADIUS,EPS",
                        help="edge-aware chroma smoothing (a guided filter on a*b*, L* as the guide): "
                        "RADIUS a fraction of the side, EPS its regularizer, or off (default: the model's own)")
    controls = parser.add_argument_group("creative controls (docs/controls-and-video.md)")
    controls.add_argument("--temperature", type=float, default=0.0, metavar="T",
                          help="white balance in [-1, 1]: + warmer, - cooler (1 = +110 mired)")
    controls.add_argument("--hue", type=float, default=0.0, metavar="DEG", help="rotate all colors by DEG degrees")
    controls.add_argument("--saturation", type=float, default=1.0, metavar="S",
                          help="chroma scale: 0 gray, 1 unchanged, 2 double")
    controls.add_argument("--reference", default=None, metavar="IMG",
                          help="match the colors' mean and spread to this photo's")
    controls.add_argument("--samples", type=int, default=None, metavar="N",
                          help="write N different variants per photo (name-s0.png ...; stochastic or dropout models)")
    guided = parser.add_argument_group("color points (docs/points.md)")
    guided.add_argument("--points", default=None, metavar="JSON|DIR",
                        help='color points: a JSON file {"points": [{"x": 412, "y": 230, "color": "#b03a2e"}]} '
                        "for one photo, or a folder of <photo stem>.json for a folder of photos")
    guided.add_argument("--point", action="append", default=None, metavar="X,Y,#RRGGBB",
                        help="one color point in the photo's pixels (repeatable; one photo only)")
    controls.add_argument("--no-temporal", dest="temporal", action="store_false",
                          help="video: colorize every frame independently (no flicker suppression)")
    archive = parser.add_argument_group("archive scale on a Ray cluster (docs/archive.md; pip install 'chromalab[ray]')")
    archive.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                         help="colorize photos on Ray: ADDRESS of a running cluster (auto: the one this "
                         "machine belongs to), or none to start Ray on this machine. DST must be a folder every "
                         "node sees at the same path; a run started again with the same command resumes the job. "
                         "Put it after the inputs (or write --ray=ADDRESS)")
    archive.add_argument("--ray-actors", type=int, default=None, metavar="N",
                         help="model actors in the pool (default: the cluster's cores / --ray-threads-per-actor)")
    archive.add_argument("--ray-threads-per-actor", type=int, default=1, metavar="N",
                         help="CPU threads of each actor (default 1); actors x threads = cores")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.ray is not None:
        return _run_ray(args)
    from chromalab.inference.colorize import colorize_files, plan_jobs
    from chromalab.inference.colorizer import Colorizer
    from chromalab.inference.controls import ColorControls, make_ab_transform
    from chromalab.inference.video import is_video_path

    ab_transform = make_ab_transform(ColorControls(args.temperature, args.hue, args.saturation, args.reference))
    colorizer = Colorizer.load(args.model, backend=args.backend, precision=args.precision)
    if args.smoothing is not None:
        from chromalab.inference.smoothing import parse_smoothing

        colorizer.smoothing = parse_smoothing(args.smoothing)
    videos = [path for path in args.inputs if is_video_path(path)]
    video_status = 0
    if videos:
        if args.samples is not None:
            raise ChromalabError("--samples works on photos, not on videos")
        if args.points or args.point:
            raise ChromalabError("color points work on photos, not on videos")
        photos = [path for path in args.inputs if not is_video_path(path)]
        if photos and is_video_path(args.out):
            raise ChromalabError(f"--out {args.out} is a video file, but photos were given too; pass a folder")
        video_status = _run_videos(args, colorizer, videos, ab_transform)
        if not photos:
            return video_status
        args.inputs = photos
    if args.samples is not None:
        if args.points or args.point:
            raise ChromalabError("--samples and color points do not go together; colorize with points without --samples")
        return _run_samples(args, colorizer, ab_transform)
    jobs, _ = plan_jobs(args.inputs, Path(args.out), args.format)
    points = _points_of(args, jobs)  # every points file is read and checked before any photo is written
    errors: list[str] = []
    with Progress(TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("colorize", total=len(jobs))
        report = colorize_files(
            colorizer, args.inputs, args.out, size=args.size, batch_size=args.batch_size or 32,
            overwrite=args.overwrite, image_format=args.format, ab_transform=ab_transform, points=points,
            on_progress=lambda n: progress.advance(task, n),
            on_error=lambda message: (errors.append(message), print(f"error: {message}", file=sys.stderr)),
        )
    print(f"colorized {len(report.written)} photo(s) into {args.out}"
          + (f"; {len(report.failed)} failed" if report.failed else ""))
    return 0 if report.ok and not video_status else 1


def _points_of(args: argparse.Namespace, jobs: list, out: Path | None = None) -> dict[Path, list] | None:
    """Each photo's color points from --point / --points, checked against the photo's size."""
    from chromalab.inference.points_files import points_for_jobs

    if not args.points and not args.point:
        return None
    if args.points and args.point:
        raise ChromalabError("give --point or --points, not both")
    sources = [job.source for job in jobs]
    # A job's output mirrors the photo's place under its input folder: so does a points folder.
    relative = [job.target.relative_to(out or Path(args.out)) for job in jobs]
    return points_for_jobs(sources, flags=args.point, points=Path(args.points) if args.points else None,
                           relative=relative)


def _run_ray(args: argparse.Namespace) -> int:
    """Photos on a Ray cluster (chromalab.inference.archive): same outputs, resumable."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from chromalab.inference import archive
    from chromalab.inference.video import is_video_path

    archive.require_ray()
    if args.ray != archive.LOCAL and os.path.lexists(args.ray) and args.ray not in args.inputs:
        raise ChromalabError(f"--ray took {args.ray} as its cluster address; put --ray after the inputs "
                             "or write --ray=ADDRESS")
    videos = [path for path in args.inputs if is_video_path(path)]
    if videos:
        raise ChromalabError(f"{videos[0]}: videos are colorized on one machine; run without --ray")
    if args.samples is not None:
        raise ChromalabError("--samples runs on one machine; run without --ray")
    if args.ray_threads_per_actor < 1 or (args.ray_actors is not None and args.ray_actors < 1):
        raise ChromalabError("--ray-actors and --ray-threads-per-actor take a number of 1 or more")
    # Ray starts (seconds of its own processes) while this process loads the model and lists
    # the photos: the start-up overlaps the driver's own preparation.
    with ThreadPoolExecutor(max_workers=1) as pool:
        preparing = pool.submit(_prepare_ray_job, args)
        started_here = archive.connect(args.ray)
        try:
            jobs, missing, points, settings, identity = preparing.result()
            # The bar appears with the first photos done: Ray's own start-up lines come before it.
            progress = Progress(TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                                _RemainingColumn(), transient=True, disable=not sys.stderr.isatty())
            task = progress.add_task("colorize", total=None, since=None)

            def advance(count: int) -> None:
                if progress.tasks[0].fields["since"] is None:
                    # Rates count from the first results, past Ray's start-up.
                    progress.update(task, since=(time.monotonic(), count))
                    progress.start()
                progress.update(task, advance=count)

            try:
                report = archive.run_archive(
                    jobs, settings, identity, missing, address=args.ray, actors=args.ray_actors, points=points,
                    on_total=lambda total: progress.update(task, total=total), on_progress=advance,
                )
            finally:
                progress.stop()
        finally:
            if started_here:
                import ray

                ray.shutdown()
    out = Path(settings.out_dir)
    for message in report.messages:
        print(f"error: {message}", file=sys.stderr)
    print(f"colorized {report.written} photo(s) into {args.out}"
          + (f"; {report.already_done} done by an earlier run" if report.already_done else "")
          + (f"; {len(report.failed)} failed (listed in {archive.journal_dir(out) / archive.FAILED_FILE})"
             if report.failed else ""))
    return 0 if report.ok else 1


def _prepare_ray_job(args: argparse.Namespace) -> tuple:
    """The driver's side of a --ray job: checked options, the photos listed once, their points,
    and the settings every actor gets; (jobs, missing inputs, points, settings, job identity)."""
    import os

    from chromalab.checkpoint import resolve_model_path
    from chromalab.inference import archive
    from chromalab.inference.colorize import plan_jobs
    from chromalab.inference.colorizer import Colorizer
    from chromalab.inference.controls import ColorControls, make_ab_transform

    # Checked here, before any photo is sent: the controls, the model (an onnx export is made
    # once, here, not by every actor at once) and its backend and precision, which every actor
    # then uses as resolved here, so all nodes compute alike.
    make_ab_transform(ColorControls(args.temperature, args.hue, args.saturation, args.reference))
    model = resolve_model_path(args.model)
    colorizer = Colorizer.load(model, backend=args.backend, precision=args.precision)
    if args.smoothing is not None:
        from chromalab.inference.smoothing import parse_smoothing

        parse_smoothing(args.smoothing)
    out = Path(os.path.abspath(args.out))
    jobs, missing = plan_jobs(args.inputs, out, args.format)
    points = _points_of(args, jobs, out)
    settings = archive.ArchiveSettings(
        out_dir=str(out), model=str(Path(model).resolve()), backend=colorizer.backend_name,
        precision=colorizer.precision, size=args.size, batch_size=args.batch_size or 32,
        smoothing=args.smoothing, temperature=args.temperature, hue=args.hue, saturation=args.saturation,
        reference=os.path.abspath(args.reference) if args.reference else None, overwrite=args.overwrite,
        threads=args.ray_threads_per_actor,
    )
    identity = [os.path.abspath(item) for item in args.inputs] + [
        f"--points={os.path.abspath(args.points)}" if args.points else "", *(f"--point={p}" for p in args.point or ())]
    return jobs, missing, points, settings, identity


def _rate(task: "Task") -> float | None:
    """Photos/s since the first results came back (they come a chunk at a time)."""
    since = task.fields.get("since")
    if not since:
        return None
    elapsed = time.monotonic() - since[0]
    return (task.completed - since[1]) / elapsed if elapsed > 1 and task.completed > since[1] else None


class _RateColumn(ProgressColumn):
    def render(self, task: "Task") -> Text:
        rate = _rate(task)
        return Text(f"{rate:.1f} photos/s" if rate else "- photos/s")


class _RemainingColumn(ProgressColumn):
    def render(self, task: "Task") -> Text:
        rate = _rate(task)
        if not rate or task.total is None:
            return Text("-:--:--")
        seconds = int((task.total - task.completed) / rate)
        return Text(f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}")


def _progress(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True, disable=not sys.stderr.isatty())


def _run_videos(args: argparse.Namespace, colorizer: "Colorizer", videos: list[str],
                ab_transform: "AbTransform | None") -> int:
    """Each video -> one colorized video (``--out`` is a file for one video, else a folder)."""
    from chromalab.inference.video import colorize_video, is_video_path, output_video_path, probe_video

    out = Path(args.out)
    if is_video_path(out) and len(videos) > 1:
        raise ChromalabError(f"--out {out} names one file but {len(videos)} videos were given; pass a folder")
    failures = 0
    for video in videos:
        source = Path(video)
        try:
            info = probe_video(source)
            with _progress(f"colorizing {source.name}") as progress:
                task = progress.add_task("frames", total=info.frames or None)
                report = colorize_video(
                    colorizer, source, output_video_path(source, out), size=args.size,
                    batch_size=args.batch_size or 8, ab_transform=ab_transform,
                    temporal=args.temporal, overwrite=args.overwrite,
                    on_progress=lambda n: progress.advance(task, n),
                )
        except ChromalabError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        print(f"colorized {report.frames} frames ({report.width}x{report.height}, {float(report.fps):.3g} fps, "
              f"{report.codec}; audio {report.audio}) into {report.target} "
              f"at {report.frames_per_second:.1f} frames/s")
    return 0 if not failures else 1


def _run_samples(args: argparse.Namespace, colorizer: "Colorizer", ab_transform: "AbTransform | None") -> int:
    """N variants per photo, and how different they are (mean pairwise CIEDE2000)."""
    from chromalab.inference.colorize import plan_jobs
    from chromalab.inference.diversity import colorize_samples

    jobs, _ = plan_jobs(args.inputs, Path(args.out), args.format)
    with _progress(f"sampling x{args.samples}") as progress:
        task = progress.add_task("samples", total=len(jobs))
        report = colorize_samples(
            colorizer, args.inputs, args.out, args.samples, size=args.size,
            batch_size=args.batch_size or 8, overwrite=args.overwrite, image_format=args.format,
            ab_transform=ab_transform,
            on_progress=lambda n: progress.advance(task, n),
            on_error=lambda message: print(f"error: {message}", file=sys.stderr),
        )
    for source, score in report.diversity.items():
        extra = f", ST-LPIPS {report.stlpips[source]:.3f}" if source in report.stlpips else ""
        print(f"{source}: diversity {score:.2f} ΔE00{extra}")
    mean = report.mean_diversity
    print(f"wrote {len(report.written)} variant(s) of {len(report.diversity)} photo(s) into {args.out}"
          + (f"; mean pairwise ΔE00 {mean:.2f}" if mean is not None else "")
          + (f"; {len(report.failed)} failed" if report.failed else ""))
    return 0 if report.ok else 1
