"""What the inference thread does for one video request, and how far it has got.

Only imported when ``chromalab.inference.video`` exists (see app.py); without it the page
accepts photos only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from chromalab.errors import ChromalabError
from chromalab.inference.video import VideoInfo, colorize_video, probe_video
from chromalab.web.jobs import ModelUnavailable, Settings, Upload, build_transform, load_model, output_name
from chromalab.web.worker import InferenceWorker

VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}  # what browsers play: the outputs


class JobProgress:
    """How far the running video job is; one is enough, as the worker runs one job at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, object] = {}

    def start(self, name: str, total: int) -> None:
        with self._lock:
            self._state = {"name": name, "done": 0, "total": total}

    def advance(self, frames: int) -> None:
        with self._lock:
            if self._state:
                self._state["done"] = int(self._state["done"]) + frames  # type: ignore[call-overload]

    def finish(self) -> None:
        with self._lock:
            self._state = {}

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return dict(self._state)


@dataclass(frozen=True)
class VideoResult:
    path: Path  # the colorized video, in the request's temporary folder
    name: str
    media_type: str
    width: int
    height: int
    frames: int
    seconds: float


MAX_VIDEO_SIDE = 3840  # 4K UHD: wider or taller frames are refused
MAX_VIDEO_FRAME_PIXELS = 3840 * 2160
MAX_VIDEO_FRAMES = 9000  # five minutes at 30 frames/s
MAX_VIDEO_SECONDS = 600.0


def check_video_limits(info: VideoInfo, name: str) -> None:
    """Width, height and length from the container, before any frame is decoded."""
    if max(info.width, info.height) > MAX_VIDEO_SIDE or info.width * info.height > MAX_VIDEO_FRAME_PIXELS:
        raise ChromalabError(f"{name}: frames of {info.width}x{info.height} are larger than this server "
                             f"takes (at most {MAX_VIDEO_SIDE} px a side, 4K UHD)")
    if info.frames > MAX_VIDEO_FRAMES:
        raise ChromalabError(f"{name}: {info.frames} frames; this server takes at most {MAX_VIDEO_FRAMES}")
    seconds = info.frames / info.fps if info.fps else 0.0
    if seconds > MAX_VIDEO_SECONDS:
        raise ChromalabError(f"{name}: {seconds:.0f} s long; this server takes at most {MAX_VIDEO_SECONDS:.0f} s")


def video_output_name(upload_name: str) -> tuple[str, str]:
    """Download name and extension: WebM stays WebM, anything else becomes MP4 (H.264)."""
    extension = ".webm" if upload_name.lower().endswith(".webm") else ".mp4"
    return output_name(upload_name, "png").removesuffix(".png") + extension, extension


def colorize_video_upload(
    worker: InferenceWorker, model_file: Path, upload: Upload, settings: Settings,
    temporal: bool, folder: Path, progress: JobProgress,
) -> VideoResult:
    """Colorize an uploaded video into ``folder``; errors name the user's file, not temp paths."""
    name, extension = video_output_name(upload.name)
    target = folder / f"colorized{extension}"
    try:
        info = probe_video(upload.path)
        check_video_limits(info, upload.name)
        transform = build_transform(settings)
        colorizer = load_model(worker, model_file)
        progress.start(upload.name, info.frames)
        done = 0

        def advance(frames: int) -> None:
            nonlocal done
            done += frames
            worker.check_stopping()  # a stopping server ends the job between frames
            if done > MAX_VIDEO_FRAMES:  # a container that under-declared its length
                raise ChromalabError(f"{upload.name}: more than {MAX_VIDEO_FRAMES} frames; this server "
                                     "takes no more")
            progress.advance(frames)

        report = colorize_video(colorizer, upload.path, target, ab_transform=transform,
                                temporal=temporal, on_progress=advance)
    except ModelUnavailable:
        raise
    except ChromalabError as error:
        message = str(error).replace(str(upload.path), upload.name).replace(str(target), name)
        raise ChromalabError(message) from None
    finally:
        progress.finish()
    return VideoResult(target, name, VIDEO_TYPES[extension], report.width, report.height,
                       report.frames, report.seconds)
