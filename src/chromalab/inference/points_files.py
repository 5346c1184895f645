"""Which color points belong to which photo, for ``chromalab colorize --point/--points``.

``--point X,Y,#RRGGBB`` (repeatable) colors one photo. ``--points FILE.json`` holds one photo's
points; ``--points DIR`` holds ``<photo stem>.json`` for the photos that have points: for a
folder input, ``DIR`` mirrors it (``DIR/sub/photo.json`` for ``sub/photo.jpg``), and a plain
``DIR/photo.json`` is taken when no mirrored file exists. A photo without a file gets none.
Every file is read and every point checked against its photo's size (from the header, after
EXIF rotation) before any photo is colorized, so a bad file stops the command before it writes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from PIL import Image

from chromalab.errors import ChromalabError
from chromalab.inference.points import ColorPoint, check_inside, parse_point_flag, read_points_file

EXIF_ORIENTATION = 0x0112
TRANSPOSED = {5, 6, 7, 8}  # orientations that swap width and height


def photo_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as displayed (EXIF rotation applied), or None if the file is not a
    readable image (colorizing then names it, as it names every bad file)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 — any unreadable file is the colorizing step's to report
        return None
    return (height, width) if orientation in TRANSPOSED else (width, height)


def _checked(points: list[ColorPoint], photo: Path, where: str) -> list[ColorPoint]:
    size = photo_size(photo)
    if size is not None:
        check_inside(points, size[0], size[1], f"{where} (for {photo})")
    return points


def points_for_jobs(
    sources: Sequence[Path],
    flags: Sequence[str] | None = None,
    points: Path | None = None,
    relative: Sequence[Path] | None = None,
) -> dict[Path, list[ColorPoint]]:
    """{photo: its points} for the photos that have any; one line for the first problem.

    ``relative``: each photo's path under its input folder (how ``DIR`` mirrors a folder).
    """
    if flags:
        if len(sources) != 1:
            raise ChromalabError(f"--point colors one photo; {len(sources)} were given (use --points DIR for a folder)")
        return {sources[0]: _checked([parse_point_flag(text) for text in flags], sources[0], "--point")}
    if points is None:
        return {}
    if points.is_file():
        if len(sources) != 1:
            raise ChromalabError(f"--points {points}: one photo's points, but {len(sources)} photos were given; "
                                 "pass a folder of <photo stem>.json")
        return {sources[0]: _checked(read_points_file(points), sources[0], str(points))}
    if not points.is_dir():
        raise ChromalabError(f"--points {points}: no such file or folder")
    found: dict[Path, list[ColorPoint]] = {}
    for index, source in enumerate(sources):
        mirrored = points / relative[index].with_suffix(".json") if relative else None
        for candidate in (mirrored, points / f"{source.stem}.json"):
            if candidate is not None and candidate.is_file():
                chosen = read_points_file(candidate)
                if chosen:
                    found[source] = _checked(chosen, source, str(candidate))
                break
    return found
