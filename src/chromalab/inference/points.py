"""User color points: where a color belongs, as people give them and as files keep them.

A point is a pixel of the input photo (x to the right, y down, origin at the top left, after
EXIF rotation), an sRGB color and an optional radius in pixels. The photo keeps its own L*:
a point gives only the chroma (a*, b*) of its color. One JSON file per photo:

    {"points": [{"x": 412, "y": 230, "color": "#b03a2e"}, {"x": 80, "y": 40, "color": "#2e5cb0", "radius": 6}]}

Every problem (malformed JSON, a bad color, a point outside the photo) is one
:class:`~chromalab.errors.ChromalabError` line that names the file and the point.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from chromalab.errors import ChromalabError

HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6})")
MAX_POINTS = 500  # far more than anyone clicks; a bound for files and the web page alike


@dataclass(frozen=True)
class ColorPoint:
    """One color point: pixel (x, y) of the input photo, an sRGB color, an optional radius."""

    x: float
    y: float
    color: str  # "#rrggbb", lower case
    radius: float | None = None  # pixels of the input photo; None: the propagation's default

    @property
    def ab(self) -> tuple[float, float]:
        """The color's CIELAB a*, b* (D65, as the rest of chromalab)."""
        return hex_to_ab(self.color)

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {"x": _plain_number(self.x), "y": _plain_number(self.y), "color": self.color}
        if self.radius is not None:
            values["radius"] = _plain_number(self.radius)
        return values

    def scaled(self, sx: float, sy: float) -> "ColorPoint":
        return ColorPoint(self.x * sx, self.y * sy, self.color, self.radius)


# What Python callers may pass for a point: a ColorPoint, (x, y, color[, radius]) or a mapping.
PointLike = Union[ColorPoint, Sequence[Any], Mapping[str, Any]]


def _plain_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def normalize_color(text: Any) -> str:
    """``"#B03A2E"`` or ``"b03a2e"`` -> ``"#b03a2e"``; ValueError for anything else."""
    match = HEX_COLOR.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"color {text!r} is not an sRGB hex color like #b03a2e")
    return f"#{match.group(1).lower()}"


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    value = normalize_color(color)[1:]
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def rgb_to_hex(rgb: Iterable[float]) -> str:
    r, g, b = (int(np.clip(round(float(c)), 0, 255)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def hex_to_ab(color: str) -> tuple[float, float]:
    import cv2

    rgb = np.array([[hex_to_rgb(color)]], dtype=np.float32) / 255.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0, 0]  # float input: L* 0-100, a*b* in Lab units
    return float(lab[1]), float(lab[2])


def make_point(item: PointLike) -> ColorPoint:
    """A ColorPoint from what a caller gave; ValueError (without a location) if it is not one."""
    if isinstance(item, ColorPoint):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - {"x", "y", "color", "radius"}
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; a point has x, y, color, radius")
        missing = [key for key in ("x", "y", "color") if key not in item]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        x, y, color, radius = item["x"], item["y"], item["color"], item.get("radius")
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (3, 4):
        x, y, color = item[0], item[1], item[2]
        radius = item[3] if len(item) == 4 else None
    else:
        raise ValueError(f"{item!r} is not a point: give (x, y, color) or {{'x': .., 'y': .., 'color': ..}}")
    for name, value in (("x", x), ("y", y)) + ((("radius", radius),) if radius is not None else ()):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"{name} {value!r} is not a number")
    if radius is not None and radius <= 0:
        raise ValueError(f"radius {radius} must be positive")
    return ColorPoint(float(x), float(y), normalize_color(color), None if radius is None else float(radius))


def check_inside(points: Sequence[ColorPoint], width: int, height: int, where: str) -> None:
    """One line naming ``where`` and the first point outside a ``width`` x ``height`` photo."""
    for number, point in enumerate(points, 1):
        if not (0 <= point.x < width and 0 <= point.y < height):
            raise ChromalabError(f"{where}: point {number} at ({_plain_number(point.x)}, {_plain_number(point.y)}) "
                                 f"is outside the {width}x{height} photo")


def make_points(items: Iterable[PointLike] | None, where: str = "points") -> list[ColorPoint]:
    """Points from a caller's list; one line naming ``where`` and the point for a bad one."""
    if items is None:
        return []
    points = []
    for number, item in enumerate(items, 1):
        try:
            points.append(make_point(item))
        except ValueError as error:
            raise ChromalabError(f"{where}: point {number}: {error}") from None
    if len(points) > MAX_POINTS:
        raise ChromalabError(f"{where}: {len(points)} points; at most {MAX_POINTS}")
    return points


def points_from_json(text: str, where: str) -> list[ColorPoint]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ChromalabError(f"{where}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    if not isinstance(document, dict) or not isinstance(document.get("points"), list):
        raise ChromalabError(f'{where}: expected {{"points": [{{"x": .., "y": .., "color": "#rrggbb"}}, ...]}}')
    return make_points(document["points"], where)


def read_points_file(path: str | Path) -> list[ColorPoint]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ChromalabError(f"{path}: no such points file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ChromalabError(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    return points_from_json(text, str(path))


def points_to_json(points: Sequence[ColorPoint]) -> str:
    return json.dumps({"points": [point.to_dict() for point in points]}, indent=2) + "\n"


def parse_point_flag(text: str) -> ColorPoint:
    """``--point 412,230,#b03a2e`` (an optional fourth field is the radius)."""
    fields = [field.strip() for field in text.split(",")]
    if len(fields) not in (3, 4):
        raise ChromalabError(f"--point {text!r}: expected X,Y,#RRGGBB (or X,Y,#RRGGBB,RADIUS)")
    try:
        numbers = [float(fields[0]), float(fields[1])] + ([float(fields[3])] if len(fields) == 4 else [])
        return make_point([numbers[0], numbers[1], fields[2], *numbers[2:]])
    except ValueError as error:
        raise ChromalabError(f"--point {text!r}: {error}") from None
