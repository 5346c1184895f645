"""What the inference thread does for one request: decode, colorize, encode.

Everything here is plain blocking code; the app hands it to the InferenceWorker, so only one
request at a time decodes photos, holds a model's activations, and encodes results.
"""

from __future__ import annotations

import io
import re
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from chromalab.data.images import open_rgb
from chromalab.errors import BadImageError, ChromalabError
from chromalab.inference.colorizer import AbTransform, Colorizer
from chromalab.web.worker import InferenceWorker

try:  # the creative controls are optional: the page hides its sliders without them
    from chromalab.inference.controls import ColorControls, make_ab_transform
except ImportError:  # pragma: no cover - depends on the installation
    ColorControls = None  # type: ignore[assignment,misc]
    make_ab_transform = None  # type: ignore[assignment]

try:  # video support is optional too: without it the page accepts photos only
    from chromalab.inference.video import colorize_video, is_video_path, probe_video
except ImportError:  # pragma: no cover - depends on the installation
    colorize_video = is_video_path = probe_video = None  # type: ignore[assignment]

CONTROLS_AVAILABLE = make_ab_transform is not None
VIDEO_AVAILABLE = colorize_video is not None
VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}  # what browsers play: the outputs
FORMATS = {"png": ("PNG", "image/png", ".png"), "jpeg": ("JPEG", "image/jpeg", ".jpg")}
JPEG_QUALITY = 95


class ModelUnavailable(ChromalabError):
    """The chosen model file cannot be loaded: a server-side problem, not the user's photo."""


@dataclass(frozen=True)
class Upload:
    """A file the user sent, saved in the request's temporary folder."""

    path: Path
    name: str  # the user's file name: every message names this, never the temporary path


@dataclass(frozen=True)
class Settings:
    temperature: float = 0.0
    hue: float = 0.0
    saturation: float = 1.0
    reference: Upload | None = None
    image_format: str = "png"

    @property
    def neutral(self) -> bool:
        return (self.temperature, self.hue % 360.0, self.saturation, self.reference) == (0.0, 0.0, 1.0, None)


@dataclass(frozen=True)
class Result:
    name: str  # suggested download name
    data: bytes
    media_type: str
    width: int
    height: int
    seconds: float  # decode + colorize + encode


def open_upload(upload: Upload) -> Image.Image:
    try:
        return open_rgb(upload.path)
    except BadImageError as error:
        raise BadImageError(upload.name, error.reason) from None


def build_transform(settings: Settings) -> AbTransform | None:
    if settings.neutral:
        return None
    if not CONTROLS_AVAILABLE:
        raise ChromalabError("color controls are not available in this installation")
    reference = open_upload(settings.reference) if settings.reference else None
    controls = ColorControls(settings.temperature, settings.hue, settings.saturation, reference)
    return make_ab_transform(controls)


def output_name(upload_name: str, image_format: str) -> str:
    """``holiday photo.tif`` -> ``holiday photo-colorized.png``; path parts and odd characters dropped."""
    stem = Path(upload_name.replace("\\", "/")).stem
    stem = re.sub(r"[^\w .()+-]", "_", stem).strip(" .") or "photo"
    return f"{stem}-colorized{FORMATS[image_format][2]}"


def encode(image: Image.Image, image_format: str) -> bytes:
    pillow_format = FORMATS[image_format][0]
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if pillow_format == "JPEG" else {}
    image.save(buffer, format=pillow_format, **options)
    return buffer.getvalue()


def _load(worker: InferenceWorker, model_file: Path) -> Colorizer:
    try:
        return worker.colorizer(model_file)
    except ChromalabError as error:
        raise ModelUnavailable(str(error)) from None


def colorize_uploads(
    worker: InferenceWorker, model_file: Path, uploads: Sequence[Upload], settings: Settings
) -> list[Result]:
    """Colorize each upload at its full resolution; BadImageError names the first bad file."""
    started = time.perf_counter()
    images = [open_upload(upload) for upload in uploads]  # bad files fail before any model work
    transform = build_transform(settings)
    colorizer = _load(worker, model_file)
    results = []
    # One photo per forward pass: photos of any size, and memory bounded by one photo.
    for upload, image in zip(uploads, images):
        colorized = colorizer.colorize_images([image], ab_transform=transform)[0]
        data = encode(colorized, settings.image_format)
        results.append(Result(
            output_name(upload.name, settings.image_format), data, FORMATS[settings.image_format][1],
            colorized.width, colorized.height, time.perf_counter() - started,
        ))
        started = time.perf_counter()
    return results


def zip_results(results: Sequence[Result]) -> bytes:
    """A ZIP of the results (stored, not deflated: PNG and JPEG are compressed already)."""
    buffer = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for result in results:
            name, number = result.name, 2
            while name in used:  # two uploads with the same name
                stem, dot, extension = result.name.rpartition(".")
                name = f"{stem} ({number}){dot}{extension}"
                number += 1
            used.add(name)
            archive.writestr(name, result.data)
    return buffer.getvalue()


# ---- video -------------------------------------------------------------------------------------


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
        transform = build_transform(settings)
        colorizer = _load(worker, model_file)
        progress.start(upload.name, info.frames)
        report = colorize_video(colorizer, upload.path, target, ab_transform=transform,
                                temporal=temporal, on_progress=progress.advance)
    except ModelUnavailable:
        raise
    except ChromalabError as error:
        message = str(error).replace(str(upload.path), upload.name).replace(str(target), name)
        raise ChromalabError(message) from None
    finally:
        progress.finish()
    return VideoResult(target, name, VIDEO_TYPES[extension], report.width, report.height,
                       report.frames, report.seconds)
