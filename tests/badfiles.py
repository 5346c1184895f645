"""A folder of bad and odd image files, generated (nothing binary is kept in the repository).

``make_corpus(root)`` writes every case below into ``root`` and says what each should do:
``bad`` files must be refused, each named once with a reason containing the given fragment;
``good`` files (ordinary or odd-but-valid) must be processed, and have the given displayed
size. Cases that only exist on a disk (links, permissions, folders) are marked so the web
tests, which upload bytes, can leave them out.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import synthetic_photo

WIDTH, HEIGHT = 48, 32  # every valid case's stored size (the EXIF-rotated one displays 32x48)


@dataclass
class Case:
    name: str  # path relative to the corpus root
    reason: str | None = None  # None: valid, must be processed; else a fragment of the reason
    size: tuple[int, int] = (WIDTH, HEIGHT)  # displayed (width, height) of a valid case
    on_disk_only: bool = False  # a link, a folder or a permission: not something one uploads


@dataclass
class Corpus:
    root: Path
    cases: list[Case] = field(default_factory=list)

    @property
    def bad(self) -> dict[str, str]:
        return {c.name: c.reason for c in self.cases if c.reason is not None}

    @property
    def good(self) -> dict[str, tuple[int, int]]:
        return {c.name: c.size for c in self.cases if c.reason is None}

    def uploadable(self) -> list[Case]:
        return [c for c in self.cases if not c.on_disk_only]


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that declares ``width`` x ``height`` (8-bit RGB) and holds almost no
    data: a decompression bomb's signature, a few dozen bytes long."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def half_dark(width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """Stored left half dark, right half bright, in color: shows which way a photo was turned."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (40, 30, 60)
    array[:, width // 2 :] = (230, 200, 120)
    return Image.fromarray(array, "RGB")


def rotated_jpeg() -> bytes:
    """A JPEG stored 48x32 with EXIF orientation 6: viewers turn it 90 degrees clockwise, so it
    displays 32x48 with its dark (stored left) half on top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(half_dark(), "JPEG", quality=95, exif=exif.tobytes())


def make_corpus(root: Path) -> Corpus:
    root.mkdir(parents=True, exist_ok=True)
    photo = synthetic_photo(5, WIDTH, HEIGHT)
    corpus = Corpus(root)

    def write(case: Case, data: bytes) -> None:
        path = root / case.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        corpus.cases.append(case)

    # Files that end early, in every format read.
    for image_format, extension in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif"),
                                    ("GIF", "gif")):
        data = encoded(photo, image_format)
        write(Case(f"truncated.{extension}", "truncated or corrupt image data"), data[: len(data) // 2])
    # Names that lie.
    write(Case("png-bytes.jpg"), encoded(photo, "PNG"))  # read by content: valid
    write(Case("notes.png", "not an image Pillow can read"), b"milk, eggs, film for the camera\n")
    # A 100000 x 100000 header in 90 bytes: refused from the header, never decoded.
    write(Case("bomb.png", "too large"), png_claiming(100_000, 100_000))
    write(Case("empty.jpg", "empty file (0 bytes)"), b"")
    write(Case("dot.png", "too small"), encoded(Image.new("RGB", (4, 4), (200, 30, 30)), "PNG"))
    # Valid, in every awkward mode.
    write(Case("cmyk.jpg"), encoded(photo.convert("CMYK"), "JPEG", quality=95))
    gray16 = np.asarray(photo.convert("L"), dtype=np.uint16) * 257
    write(Case("gray16.png"), encoded(Image.fromarray(gray16), "PNG"))
    write(Case("palette.png"), encoded(photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG"))
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, WIDTH, dtype=np.uint8), (HEIGHT, 1)))
    write(Case("gray-alpha.png"), encoded(Image.merge("LA", (photo.convert("L"), alpha)), "PNG"))
    write(Case("palette.gif"), encoded(photo, "GIF"))
    write(Case("rotated.jpg", size=(HEIGHT, WIDTH)), rotated_jpeg())
    write(Case("plain.png"), encoded(photo, "PNG"))
    # What only a disk has.
    write(Case("x.jpg/inside.png", on_disk_only=True), encoded(photo, "PNG"))  # a folder named like a photo
    os.symlink("loop.jpg", root / "loop.jpg")  # a link to itself
    corpus.cases.append(Case("loop.jpg", "symbolic link loop", on_disk_only=True))
    os.symlink("no-such-photo.jpg", root / "dangling.jpg")
    corpus.cases.append(Case("dangling.jpg", "broken symbolic link", on_disk_only=True))
    os.symlink("..", root / "x.jpg" / "up")  # a folder link back up the tree: followed once, not forever
    locked = Case("locked.png", "permission denied", on_disk_only=True)
    write(locked, encoded(photo, "PNG"))
    (root / locked.name).chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: then it is simply a valid photo
        locked.reason = None
    return corpus


def restore_permissions(corpus: Corpus) -> None:
    """Let pytest's temporary-folder clean-up remove the locked file."""
    for case in corpus.cases:
        path = corpus.root / case.name
        if not path.is_symlink() and path.exists():
            path.chmod(0o644)
