"""Reading and writing photos safely: every odd file becomes a one-line BadImageError.

Pillow does the decoding. This module adds what colorization needs on top of it: EXIF
orientation, correct conversion of palette / alpha / CMYK / 16-bit images to 8-bit sRGB,
a decompression-bomb limit, grayscale detection, and atomic writes that never clobber a file.
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chromalab.atomic import OutputExistsError, atomic_target
from chromalab.errors import BadImageError

# Inputs read by these names (by content, whatever the name says). GIF is read (its first frame)
# but never written: an output named .gif is written as PNG.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"})
MIN_SIDE = 8  # smaller images carry no usable content for a colorizer
# Beyond this a file is treated as a decompression bomb. Checked per call (open_rgb reads the
# declared size before decoding); Pillow's global settings are the host program's, never changed
# on import. Truncated files fail loudly with Pillow's default LOAD_TRUNCATED_IMAGES = False.
MAX_PIXELS = 120_000_000

JPEG_QUALITY = 95  # outputs are kept and shown: well above Pillow's 75

# Pillow's save format names for the extensions we write.
FORMAT_BY_EXTENSION = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}


def resolved(path: Path) -> Path:
    """``path.resolve()``, or its absolute form when it cannot be resolved (a link to itself
    makes ``resolve`` raise): for comparing paths, where a bad input must not stop a batch."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _to_rgb8(image: Image.Image, keep_gray: bool = False) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a viewer would show it.

    ``keep_gray``: a photo stored as one gray channel (8, 16 or 32 bits) comes back as 8-bit
    "L" instead, a third of the memory, for code that reads lightness only (colorization).
    """
    mode = image.mode
    if mode == "RGB" or (mode == "L" and keep_gray):
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit integer gray: rescale to 8 bits by the type's range, not by clipping.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        return gray if keep_gray else gray.convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        top = 1.0 if array.max() <= 1.0 else 255.0
        gray = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        return gray if keep_gray else gray.convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite transparency on white, as photo viewers do.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return image.convert("RGB")
    return image.convert("RGB")


def _check_file(path: Path) -> None:
    """The reasons a path cannot be an image that need no decoder, as BadImageError."""
    try:
        info = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BadImageError(path, "symbolic link loop (it leads back to itself)") from None
        if path.is_symlink():
            raise BadImageError(path, "broken symbolic link (its target does not exist)") from None
        if error.errno == errno.EACCES:
            raise BadImageError(path, "permission denied") from None
        raise BadImageError(path, "no such file" if error.errno == errno.ENOENT else _os_reason(error)) from None
    if path.is_dir():
        raise BadImageError(path, "is a folder, not an image")
    if info.st_size == 0:
        raise BadImageError(path, "empty file (0 bytes)")


def _os_reason(error: OSError) -> str:
    """One short reason for an OSError from opening or decoding a file."""
    if isinstance(error, PermissionError):
        return "permission denied"
    text = str(error.strerror or error) or type(error).__name__
    lowered = text.lower()
    # Pillow's wordings of a file that ends early: "image file is truncated", "Truncated File
    # Read", "image file is truncated (3 bytes not processed)"; WebP's decoder gives up on a
    # cut-off file with "could not create decoder object".
    if "truncated" in lowered or "image file is" in lowered or "decoder object" in lowered:
        return "truncated or corrupt image data"
    return text


def open_rgb(path: str | os.PathLike[str], draft_size: int | None = None, keep_gray: bool = False) -> Image.Image:
    """Decode ``path`` to an 8-bit RGB Pillow image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding skip detail below that shorter side (much faster when
    the photo will be downscaled anyway). ``keep_gray`` returns a one-channel photo as 8-bit
    "L" (see ``_to_rgb8``). Raises BadImageError with a one-line reason.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            # Our own limit is checked below, from the header; Pillow's warning (at its global
            # MAX_IMAGE_PIXELS) is not ours to act on. Its error, at twice that, still stops.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise BadImageError(
                        path, f"too large ({width}x{height}, over {MAX_PIXELS:,} pixels)"
                    )
                if min(width, height) < MIN_SIDE:
                    raise BadImageError(
                        path, f"too small ({width}x{height}; needs at least {MIN_SIDE} px a side)"
                    )
                if draft_size and image.format == "JPEG":
                    image.draft("RGB", (draft_size, draft_size))
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb8(image, keep_gray)
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImageError(path, "too large (decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image Pillow can read") from None
    except OSError as error:
        raise BadImageError(path, _os_reason(error)) from None
    except (ValueError, SyntaxError, EOFError) as error:
        raise BadImageError(path, f"corrupt image ({error})") from None


def grayscale_score(image: Image.Image, size: int = 64) -> float:
    """95th percentile of the per-pixel channel spread (max - min of R, G, B), in 0..255.

    A percentile rather than a mean so that a gray photo with a few colored JPEG artefacts
    still counts as gray while a mostly-gray photo with one colored object does not.
    """
    small = image.copy()
    small.thumbnail((size, size))
    array = np.asarray(small, dtype=np.int16)
    spread = array.max(axis=2) - array.min(axis=2)
    return float(np.percentile(spread, 95))


GRAY_THRESHOLD = 6.0  # channel spread below this (of 255) at the 95th percentile = grayscale


def is_grayscale(image: Image.Image, threshold: float = GRAY_THRESHOLD) -> bool:
    if image.mode in ("L", "LA", "I", "I;16", "F", "1"):
        return True
    return grayscale_score(image) < threshold


# --- Monochrome detection that tolerates noise and toning (used by prepare and explore) ----
# grayscale_score above calls a gray scan with JPEG chroma noise "color" (per-channel noise of
# 2/255 already spreads the channels by 7) and a sepia print "color" too. The rule below
# removes the photo's own tint first, measures what color is left, and caps the tint's
# strength. See docs/data-tools.md ("Which photos count as gray").
MONO_BANDS = 8  # lightness bands (12.5 L* each); the tint may differ from band to band
# Thresholds measured on 800 photos of shared/data/train and synthetic cases: gray + RGB noise
# of sigma 4 leaves a residual <= 2.9, sepia/cyanotype toning <= 1.6 (tint <= 21); real
# near-gray product shots score 1-4.5, photos with a small colored object 5 and above.
MONO_RESIDUAL_MAX = 5.0  # a*b* units left after removing the tint, at the 95th percentile
MONO_TINT_MAX = 30.0  # the strongest tint (chroma) a monochrome photo may have
MONO_MIN_BAND_SHARE = 0.02  # bands holding fewer pixels do not set the tint


def rgb_to_lab_array(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> float32 CIELAB (D65): L* 0..100, a*, b* about -128..127.

    OpenCV rather than kornia: 5x faster per photo on a CPU core, and within 0.35 Lab units
    of ``chromalab.color.rgb_to_lab`` (below every histogram bin chromalab uses).
    """
    import cv2  # imported here: most users of this module never need it

    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)


def monochrome_stats(image: Image.Image, size: int = 64) -> tuple[float, float]:
    """(residual, tint) of a photo, both in a*b* units.

    At ``size`` px, lightly blurred (3x3, which averages away pixel noise but not objects),
    the photo's tint in each lightness band is the median a*b* of the band's pixels.
    ``residual`` is the 95th percentile over pixels of the distance from their band's tint:
    what color is left after toning is removed. ``tint`` is the largest tint chroma over bands
    holding at least 2% of the pixels.
    """
    small = image.convert("RGB")
    small.thumbnail((size, size))
    array = np.asarray(small, dtype=np.uint8)
    if min(array.shape[:2]) >= 3:
        import cv2

        array = cv2.blur(array, (3, 3))
    lab = rgb_to_lab_array(array).reshape(-1, 3)
    bands = np.minimum((lab[:, 0] * (MONO_BANDS / 100.0)).astype(np.int64), MONO_BANDS - 1)
    tint_per_pixel = np.zeros((len(lab), 2), dtype=np.float32)
    tint = 0.0
    for band in np.unique(bands):
        members = bands == band
        median = np.median(lab[members, 1:], axis=0)
        tint_per_pixel[members] = median
        if members.mean() >= MONO_MIN_BAND_SHARE:
            tint = max(tint, float(np.hypot(*median)))
    residual = np.linalg.norm(lab[:, 1:] - tint_per_pixel, axis=1)
    return float(np.percentile(residual, 95)), tint


def is_monochrome(image: Image.Image) -> bool:
    """Gray, or gray with noise or a tint (sepia, cyanotype): nothing a colorizer can learn.

    A photo with a clearly colored region of about 5% of its area or more is not monochrome.
    """
    if image.mode in ("L", "LA", "I", "I;16", "F", "1"):
        return True
    residual, tint = monochrome_stats(image)
    return residual < MONO_RESIDUAL_MAX and tint < MONO_TINT_MAX


def read_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header only.

    Raises BadImageError like ``open_rgb``, with the same reasons.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                    width, height = height, width
                return width, height
    except Image.DecompressionBombError:
        raise BadImageError(path, "too large (decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image Pillow can read") from None
    except OSError as error:
        raise BadImageError(path, _os_reason(error)) from None
    except (ValueError, SyntaxError, EOFError) as error:
        raise BadImageError(path, f"corrupt image ({error})") from None


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and center-crop to ``size`` x ``size``."""
    width, height = image.size
    # The crop is the shorter side itself: size / (size / side) can come out a hair above it
    # (150 -> 150.00000000000003) and give Pillow a negative box offset.
    side = min(width, height)
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return image.resize(
        (size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )


def check_writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadImageError(folder, f"cannot create output folder ({error.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise BadImageError(folder, "output folder is not writable")


def save_image_atomic(
    image: Image.Image,
    path: Path,
    overwrite: bool = False,
    protected: frozenset[Path] = frozenset(),
    **save_options: object,
) -> None:
    """Write via a temporary file in the same folder, then rename: never a half-written file.

    Refuses to replace ``protected`` paths (the inputs) and, unless ``overwrite``, any
    existing file.
    """
    path = Path(path)
    if resolved(path) in protected:
        raise BadImageError(path, "refusing to overwrite an input file")
    if path.exists() and not overwrite:
        raise BadImageError(path, "output exists (use --overwrite to replace it)")
    check_writable_folder(path.parent)
    image_format = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if image_format is None:
        raise BadImageError(path, f"unsupported output format {path.suffix!r}")
    if image_format == "JPEG":
        save_options.setdefault("quality", JPEG_QUALITY)
    try:
        # replace=False: a file that appeared since the check above is not replaced either.
        with atomic_target(path, replace=overwrite) as temporary:
            image.save(temporary, format=image_format, **save_options)
    except OutputExistsError:
        raise BadImageError(path, "output exists (use --overwrite to replace it)") from None
    except OSError as error:
        raise BadImageError(path, f"cannot write ({error.strerror or error})") from None
