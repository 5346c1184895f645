"""Color points on the web page: one edit per photo, kept between clicks.

Placing a point must update the result in a fraction of a second, so the slow half of
colorizing is done once, when the page opens an edit (``POST /api/points/edit``): the
photo is decoded, the network runs, and the edit keeps the decoded photo, its
full-resolution L*, the network's a*b* (with the page's controls applied) and a
:class:`~chromalab.inference.propagation.PointGuide`. Each render (``POST /api/points/render``)
then only spreads the points (milliseconds on the guide's small grid), merges with the KEPT L*
(at full size, or at a preview size whose L* is computed once and kept too) and encodes.

Renders carry a sequence number: a change that a newer one replaces is not worth computing,
so the store remembers the newest number queued per edit and a render older than that is
refused (409) on arrival and again when the worker reaches it, without computing.

Edits (a photo opened for color points) live in a small LRU store, bounded in count, in bytes
and in idle time: an edit is a convenience, not storage, and the page re-opens one
transparently when its edit has gone (404).
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from chromalab.color import AB_SCALE
from chromalab.errors import ChromalabError
from chromalab.inference.colorizer import Colorizer, with_points
from chromalab.inference.hints import points_to_hints
from chromalab.inference.fullres import lab_to_srgb_uint8, lightness_array, merge_full_resolution, model_input
from chromalab.inference.points import ColorPoint, check_inside, points_from_json, rgb_to_hex
from chromalab.inference.propagation import PointGuide, work_size
from chromalab.web.jobs import (
    FORMATS, JPEG_QUALITY, PNG_COMPRESS_LEVEL, Settings, Upload, build_transform, check_pixel_budget,
    load_model, open_upload, output_name,
)
from chromalab.web.worker import InferenceWorker

MAX_EDITS = 4  # photos being edited at once; a fifth evicts the least recently used
MAX_EDIT_BYTES = 1 << 30  # all edits together: one 50-MP color photo is ~0.35 GB
EDIT_IDLE_SECONDS = 30 * 60  # an untouched edit is dropped after this
PREVIEW_SIDE = 2048  # what the page asks for while editing (longest side of the preview)
PREVIEW_JPEG_QUALITY = 90  # live previews: a third smaller than 95 (less to send and decode at every change)
KEPT_PREVIEWS = 2  # preview sizes whose L* an edit keeps (the page asks for one)


class EditGone(ChromalabError):
    """No such edit: never opened, evicted, or expired. The page opens a new one."""


class Outdated(Exception):
    """A render whose sequence number a newer render of the same edit has overtaken."""

    def __init__(self, seq: int, newest: int) -> None:
        super().__init__(f"change {seq} was replaced by change {newest}; not rendered")


@dataclass(frozen=True)
class GuidedRerun:
    """What re-running a point-guided network needs: the model, its input, the page's controls."""

    colorizer: Colorizer
    l_small: torch.Tensor  # (1, 1, size, size) normalized L, as predict_photos made it
    transform: Any

    def predict(self, photo: Image.Image, points: list[ColorPoint]) -> torch.Tensor:
        size = self.l_small.shape[-1]
        hints = points_to_hints([points], [photo.size], size)
        ab = self.colorizer.predict_ab(self.l_small, hints=hints)
        return self.colorizer.finish_ab([photo], self.l_small, ab, self.transform)[0]


@dataclass
class PointEdit:
    """What a photo's renders reuse: everything that does not depend on the points."""

    id: str
    name: str  # the user's file name, for download names
    model_id: str
    photo: Image.Image  # decoded once ("L" for gray photos)
    lightness: np.ndarray  # (H, W) float32 L* at full resolution, computed once
    ab_small: torch.Tensor  # (2, h, w) normalized a*b*: the network's, with the page's controls
    guide: PointGuide
    previews: OrderedDict[int, np.ndarray] = field(default_factory=OrderedDict)  # L* by preview side
    # A point-guided network (effunet-guided) sees the points too: it runs again at every render,
    # on the kept network input (milliseconds at its own size). None for every other model.
    guided: "GuidedRerun | None" = None
    newest_seq: int = -1
    last_used: float = 0.0

    @property
    def width(self) -> int:
        return self.photo.width

    @property
    def height(self) -> int:
        return self.photo.height

    @property
    def nbytes(self) -> int:
        """Memory it holds, counting room for its preview L* (which it fills lazily)."""
        photo = self.width * self.height * len(self.photo.getbands())
        preview = min(self.lightness.nbytes, PREVIEW_SIDE * PREVIEW_SIDE * 4)
        return photo + self.lightness.nbytes + self.guide.lightness.nbytes + KEPT_PREVIEWS * preview

    def lightness_at(self, max_side: int) -> np.ndarray:
        """L* for an output whose longest side is at most ``max_side`` (0: full size); a
        preview's L* is made once (the photo resized, as the network's input is) and kept."""
        if max_side <= 0 or max_side >= max(self.width, self.height):
            return self.lightness
        if max_side in self.previews:
            self.previews.move_to_end(max_side)
            return self.previews[max_side]
        size = work_size(self.width, self.height, max_side)
        small = self.photo.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        self.previews[max_side] = lightness_array(small)
        while len(self.previews) > KEPT_PREVIEWS:
            self.previews.popitem(last=False)
        return self.previews[max_side]

    def model_color(self, x: float, y: float) -> str:
        """The model's own color (no points) at photo pixel (x, y), as the full-size merge
        makes it: the photo's L* there with the network's a*b* upsampled bilinearly."""
        row = min(self.height - 1, max(0, int(y)))
        col = min(self.width - 1, max(0, int(x)))
        ab = _bilinear_ab(self.ab_small, x, y, self.width, self.height) * np.float32(AB_SCALE)
        pixel = lab_to_srgb_uint8(self.lightness[row:row + 1, col:col + 1], ab.reshape(1, 1, 2))
        return rgb_to_hex(pixel[0, 0])


def _bilinear_ab(ab_small: torch.Tensor, x: float, y: float, width: int, height: int) -> np.ndarray:
    """ab_small (2, h, w) at photo pixel (x, y), sampled as OpenCV's INTER_LINEAR upsampling
    samples it (half-pixel centers, edges clamped) -> (2,) normalized."""
    small = ab_small.detach().float().numpy()
    _, h, w = small.shape

    def axis(position: float, photo_size: int, grid_size: int) -> tuple[int, int, float]:
        source = min(max((position + 0.5) * grid_size / photo_size - 0.5, 0.0), grid_size - 1.0)
        low = int(source)
        return low, min(low + 1, grid_size - 1), source - low

    top, bottom, fy = axis(int(y), height, h)
    left, right, fx = axis(int(x), width, w)
    upper = small[:, top, left] * (1 - fx) + small[:, top, right] * fx
    lower = small[:, bottom, left] * (1 - fx) + small[:, bottom, right] * fx
    return (upper * (1 - fy) + lower * fy).astype(np.float32)


class EditStore:
    """A few edits, least recently used first out; bounded in count, bytes and idle time.

    Shared by the event loop (look-ups, sequence numbers) and the inference thread (adding,
    rendering), hence the lock.
    """

    def __init__(self, max_edits: int = MAX_EDITS, max_bytes: int = MAX_EDIT_BYTES,
                 idle_seconds: float = EDIT_IDLE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_edits = max_edits
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._edits: OrderedDict[str, PointEdit] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._edits)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(edit.nbytes for edit in self._edits.values())

    def add(self, edit: PointEdit) -> None:
        """Keep ``edit``, evicting the least recently used ones beyond the bounds (the new
        one always stays: a photo the server accepted can always be edited)."""
        with self._lock:
            self._expire()
            edit.last_used = self._clock()
            self._edits[edit.id] = edit
            total = sum(kept.nbytes for kept in self._edits.values())
            while len(self._edits) > 1 and (len(self._edits) > self.max_edits or total > self.max_bytes):
                _, evicted = self._edits.popitem(last=False)
                total -= evicted.nbytes

    def get(self, edit_id: str) -> PointEdit:
        with self._lock:
            return self._touch(edit_id)

    def remove(self, edit_id: str) -> bool:
        with self._lock:
            return self._edits.pop(edit_id, None) is not None

    def current(self, edit_id: str, seq: int | None) -> PointEdit:
        """The edit, if render ``seq`` is not older than the newest it has queued (else
        Outdated). ``seq`` None (downloads, scripts): never outdated."""
        with self._lock:
            edit = self._touch(edit_id)
            if seq is not None and seq < edit.newest_seq:
                raise Outdated(seq, edit.newest_seq)
            return edit

    def queued(self, edit_id: str, seq: int | None) -> None:
        """Render ``seq`` is on the worker's queue: from now on older ones are outdated. Only
        queued renders count, so a render refused as busy (503) cannot make the renders before
        it be dropped and leave the user's latest change unrendered."""
        with self._lock:
            edit = self._edits.get(edit_id)
            if edit is not None and seq is not None:
                edit.newest_seq = max(edit.newest_seq, seq)

    def _touch(self, edit_id: str) -> PointEdit:
        self._expire()
        edit = self._edits.get(edit_id)
        if edit is None:
            raise EditGone("this photo's color-points edit has expired or does not exist; open it again")
        edit.last_used = self._clock()
        self._edits.move_to_end(edit_id)
        return edit

    def _expire(self) -> None:
        deadline = self._clock() - self.idle_seconds
        for edit_id in [key for key, kept in self._edits.items() if kept.last_used < deadline]:
            del self._edits[edit_id]


# ---- what the inference thread does ------------------------------------------------------------


def open_edit(worker: InferenceWorker, store: EditStore, model_file: Path, model_id: str,
                 upload: Upload, settings: Settings) -> dict[str, Any]:
    """Decode the photo, run the network once, keep what every render reuses; the page's reply."""
    started = time.perf_counter()
    check_pixel_budget([upload])  # refused from its header, before decoding
    transform = build_transform(settings)
    colorizer = load_model(worker, model_file)
    photo = open_upload(upload)
    ab_small = colorizer.predict_photos([photo], ab_transform=transform)[0].clone()
    guided = None
    if colorizer.takes_points:
        guided = GuidedRerun(colorizer, model_input(photo, colorizer.spec.size), transform)
    edit = PointEdit(
        id=secrets.token_urlsafe(12), name=upload.name, model_id=model_id, photo=photo,
        lightness=lightness_array(photo), ab_small=ab_small, guide=PointGuide(photo), guided=guided,
    )
    store.add(edit)
    return {
        "edit": edit.id, "width": edit.width, "height": edit.height, "model": model_id,
        "preview_side": PREVIEW_SIDE, "seconds": round(time.perf_counter() - started, 4),
    }


@dataclass(frozen=True)
class RenderOrder:
    """A parsed ``POST /api/points/render`` body."""

    edit: str
    points: list[ColorPoint]
    seq: int | None = None  # None: a download or a script; never dropped as outdated
    max_side: int = 0  # longest side of the image returned; 0: the photo's full size
    image_format: str = "png"


def parse_render(text: str) -> RenderOrder:
    """The render body: the points file's JSON plus ``edit``, ``seq``, ``max_side`` and
    ``format``. Any problem is one ChromalabError line."""
    points = points_from_json(text, "points")  # malformed JSON and bad points: its own lines
    document = json.loads(text)
    edit = document.get("edit")
    if not isinstance(edit, str) or not edit:
        raise ChromalabError('render: "edit" is missing (the id POST /api/points/edit returned)')
    seq = _whole_number(document, "seq", None)
    max_side = _whole_number(document, "max_side", 0)
    image_format = document.get("format", "png")
    if image_format not in FORMATS:
        raise ChromalabError(f"render: format {image_format!r}; choose {' or '.join(FORMATS)}")
    return RenderOrder(edit, points, seq, max_side, image_format)


def _whole_number(document: dict[str, Any], key: str, default: int | None) -> int | None:
    value = document.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChromalabError(f"render: {key} {value!r} is not a whole number >= 0")
    return value


def check_order(store: EditStore, order: RenderOrder) -> PointEdit:
    """Before queueing: the edit exists, the points lie inside its photo and the order is
    not outdated. Raises EditGone, ChromalabError or Outdated."""
    edit = store.current(order.edit, order.seq)
    check_inside(order.points, edit.width, edit.height, "points")
    return edit


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str
    name: str
    width: int  # of the image returned (a preview may be smaller than the photo)
    height: int
    photo_width: int
    photo_height: int
    seconds: float  # spread + merge + encode, on the inference thread


def render(store: EditStore, order: RenderOrder) -> Rendered:
    """The photo with its points: spread on the guide, merged with the kept L*, encoded."""
    edit = store.current(order.edit, order.seq)  # dropped here if overtaken while queued
    started = time.perf_counter()
    ab = edit.ab_small
    if edit.guided is not None and order.points:
        ab = edit.guided.predict(edit.photo, order.points)
    if edit.guided is None or edit.guided.colorizer.propagate_points:
        ab = with_points(edit.photo, ab, order.points, edit.guide)
    pixels = merge_full_resolution(edit.lightness_at(order.max_side), ab.unsqueeze(0))
    data = encode_pixels(pixels, order.image_format, preview=order.max_side > 0)
    height, width = pixels.shape[:2]
    return Rendered(data, FORMATS[order.image_format][1], output_name(edit.name, order.image_format),
                    width, height, edit.width, edit.height, time.perf_counter() - started)


def encode_pixels(pixels: np.ndarray, image_format: str, preview: bool) -> bytes:
    """JPEG 90 for live previews (encoding is a third of a render), else as /api/colorize."""
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=PREVIEW_JPEG_QUALITY if preview else JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def model_color(store: EditStore, edit_id: str, x: float, y: float) -> dict[str, Any]:
    """The model's color at a photo pixel: what the page offers first for a new point."""
    edit = store.get(edit_id)
    check_inside([ColorPoint(x, y, "#000000")], edit.width, edit.height, "point")
    return {"x": x, "y": y, "color": edit.model_color(x, y)}
