"""chromalab: deep-learning image colorization — train, compare and apply colorization models.

    from chromalab import load_model, colorize
    colorizer = load_model()                 # the shipped default model
    photo = colorize("old-photo.jpg")        # -> PIL.Image, same size, same lightness
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

__version__ = "0.1.0"

if TYPE_CHECKING:
    from PIL import Image

    from chromalab.inference.colorizer import Colorizer


def load_model(
    name_or_path: str | Path | None = None, backend: str = "auto", precision: str = "auto"
) -> "Colorizer":
    """A shipped model by name ('default'), a model file (.safetensors/.ckpt) or a run folder.

    ``backend``: auto, torch or onnx; ``precision``: auto, fp32, bf16 or int8
    (:mod:`chromalab.inference.precision`).
    """
    from chromalab.inference.colorizer import Colorizer

    return Colorizer.load(name_or_path, backend=backend, precision=precision)


def colorize(
    image: "str | Path | Image.Image",
    model: "str | Path | Colorizer | None" = None,
    size: int | None = None,
    *,
    temperature: float = 0.0,
    hue: float = 0.0,
    saturation: float = 1.0,
    reference: "str | Path | Image.Image | None" = None,
    points: "Sequence[Any] | None" = None,
    **options: Any,
) -> "Image.Image":
    """Colorize one photo (path or PIL image) at its full resolution.

    Creative controls (docs/controls-and-video.md): ``temperature`` in [-1, 1] (+ warmer),
    ``hue`` rotation in degrees, ``saturation`` chroma scale (0 gray, 1 unchanged) and a
    ``reference`` photo whose color statistics to match. Lightness is never changed.
    ``points``: color points ``[(x, y, "#rrggbb"), ...]`` in the photo's pixels (after EXIF
    rotation): each point's color spreads over its region (docs/points.md).
    """
    from PIL import Image as PILImage

    from chromalab.data.images import open_rgb
    from chromalab.inference.colorizer import Colorizer
    from chromalab.inference.controls import ColorControls, make_ab_transform

    colorizer = model if isinstance(model, Colorizer) else load_model(model)
    picture = image if isinstance(image, PILImage.Image) else open_rgb(image)
    transform = make_ab_transform(ColorControls(temperature, hue, saturation, reference))
    if transform is not None:
        options["ab_transform"] = transform
    return colorizer.colorize(picture, size=size, points=points, **options)


def train(config: "str | Path | dict[str, Any] | None" = None, resume: str | None = None, **overrides: Any) -> Path:
    """Train from a YAML file or dict, with dotted overrides (``train(cfg, **{"optim.lr": 1e-3})``).

    ``train(resume="runs/mine")`` continues that run with its own recipe (its ``config.yaml``);
    overrides may extend it (``**{"trainer.epochs": 30}``) but not change the recipe.
    """
    from chromalab.training.config import TrainConfig
    from chromalab.training.resume import find_run, trained_config
    from chromalab.training.trainer import train as run_training

    if config is None and resume is not None:
        run, checkpoint = find_run(resume)
        resolved, resume = trained_config(run), str(checkpoint)
    elif config is None:
        resolved = TrainConfig()
    elif isinstance(config, dict):
        resolved = TrainConfig.from_dict(config)
    else:
        resolved = TrainConfig.from_yaml(config)
    for path, value in overrides.items():
        resolved.set(path, value)
    return run_training(resolved, resume=resume)


__all__ = ["__version__", "colorize", "load_model", "train"]
