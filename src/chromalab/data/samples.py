"""Sample photos that ship inside a dependency (scikit-image), for the demo and the tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Color photographs bundled in scikit-image's wheel (no download needed), and two gray ones.
COLOR_SAMPLES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
GRAY_SAMPLES = ("camera.png", "moon.png")


def sample_photo_paths(include_gray: bool = False) -> list[Path]:
    folder = resources.files("skimage") / "data"
    names = COLOR_SAMPLES + (GRAY_SAMPLES if include_gray else ())
    return [Path(str(folder / name)) for name in names if (folder / name).is_file()]
