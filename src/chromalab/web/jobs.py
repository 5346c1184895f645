"""What the inference thread does for one photo request: decode, colorize, encode.

Everything here is plain blocking code; the app hands it to the InferenceWorker, so only one
request at a time decodes photos, holds a model's activations, and encodes results.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from chromalab.data.images import open_rgb
from chromalab.data.images import read_size
from chromalab.errors import BadImageError, ChromalabError
from chromalab.inference.colorizer import AbTransform, Colorizer
from chromalab.web.worker import InferenceWorker

try:  # the creative controls are optional: the page hides its sliders without them
    from chromalab.inference.controls import ColorControls, make_ab_transform
except ImportError:  # pragma: no cover - depends on the installation
    ColorControls = None  # type: ignore[assignment,misc]
    make_ab_transform = None  # type: ignore[assignment]

CONTROLS_AVAILABLE = make_ab_transform is not None
FORMATS = {"png": ("PNG", "image/png", ".png"), "jpeg": ("JPEG", "image/jpeg", ".jpg")}
JPEG_QUALITY = 95
# zlib level 1, not Pillow's 6: on a 9-megapixel photo it encodes ~3.5x faster (2.0 s vs 7.3 s
# on this project's loaded 2-core machine) for a ~29% larger file; every slider move
# re-encodes, and the file only travels over the local loopback.
PNG_COMPRESS_LEVEL = 1


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


MAX_PHOTO_PIXELS = 50_000_000  # one photo: a 50-MP scan; its decode and merge stay under ~1 GB
MAX_REQUEST_PIXELS = 100_000_000  # all photos of one request together


def open_upload(upload: Upload) -> Image.Image:
    try:
        return open_rgb(upload.path, keep_gray=True)
    except BadImageError as error:
        raise BadImageError(upload.name, error.reason) from None


def check_pixel_budget(uploads: Sequence[Upload], per_photo: int | None = None, per_request: int | None = None) -> None:
    """Every upload's declared size, from its header, before any photo is decoded.

    A flat 100-MP PNG is a few hundred KB: the upload limit alone lets one request ask for
    tens of GB of decoded pixels. The budget is checked on what the files declare, so no
    pixel of a refused request is ever decoded; bad files fail here too, naming the upload.
    """
    per_photo = per_photo or MAX_PHOTO_PIXELS
    per_request = per_request or MAX_REQUEST_PIXELS
    total = 0
    for upload in uploads:
        try:
            width, height = read_size(upload.path)
        except BadImageError as error:
            raise BadImageError(upload.name, error.reason) from None
        if width * height > per_photo:
            raise BadImageError(upload.name, f"too large for this server ({width}x{height}, "
                                f"over {per_photo / 1e6:g} megapixels a photo)")
        total += width * height
    if total > per_request:
        raise ChromalabError(f"these photos hold {total / 1e6:.0f} megapixels together; this server takes "
                             f"at most {per_request / 1e6:g} per request (send fewer at a time)")


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
    options = {"quality": JPEG_QUALITY} if pillow_format == "JPEG" else {"compress_level": PNG_COMPRESS_LEVEL}
    image.save(buffer, format=pillow_format, **options)
    return buffer.getvalue()


def load_model(worker: InferenceWorker, model_file: Path) -> Colorizer:
    try:
        return worker.colorizer(model_file)
    except ChromalabError as error:
        raise ModelUnavailable(str(error)) from None


def colorize_uploads(
    worker: InferenceWorker, model_file: Path, uploads: Sequence[Upload], settings: Settings
) -> list[Result]:
    """Colorize each upload at its full resolution; BadImageError names the first bad file."""
    started = time.perf_counter()
    check_pixel_budget(uploads)  # sizes and bad headers fail before any decoding or model work
    transform = build_transform(settings)
    colorizer = load_model(worker, model_file)
    results = []
    # One photo decoded, colorized and encoded at a time: memory is bounded by one photo.
    for upload in uploads:
        worker.check_stopping()
        colorized = colorizer.colorize_images([open_upload(upload)], ab_transform=transform)[0]
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
