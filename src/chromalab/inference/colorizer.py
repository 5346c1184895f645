"""A loaded model, ready to colorize photos at their full resolution.

The network runs at a fixed ``size`` (the model's training size by default); its a*b* are
upsampled to the photo's resolution and joined with the photo's own full-resolution L*. So
the output keeps every detail and exactly the input's lightness, whatever the photo's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from chromalab.checkpoint import ModelSpec, load_network
from chromalab.color import uint8_to_float
from chromalab.inference.fullres import full_resolution_lightness, merge_full_resolution, model_input
from chromalab.inference.hints import points_to_hints
from chromalab.inference.points import ColorPoint, PointLike, check_inside, make_points
from chromalab.inference.propagation import PointGuide
from chromalab.inference.smoothing import ChromaSmoothing

# (L_norm, ab_norm) at model size -> adjusted ab_norm; see chromalab.inference.controls.
AbTransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Backend(Protocol):
    def __call__(self, l_norm: torch.Tensor, **options: Any) -> torch.Tensor: ...


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) float in [0, 1]."""
    array = np.array(image.convert("RGB"), dtype=np.uint8)
    return uint8_to_float(torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0))


class Colorizer:
    """A network, its spec, and the full-resolution colorization around it."""

    def __init__(self, net: torch.nn.Module, spec: ModelSpec, backend: Backend | None = None) -> None:
        from chromalab.color import get_color_space

        self.net = net.eval()
        self.spec = spec
        # The model's own chroma multiplier (``chromalab export --saturation``): 1 = as trained.
        self.saturation = float(spec.extra.get("saturation", 1.0))
        # The model's own edge-aware chroma smoothing (``chromalab export --smoothing``): None = off.
        self.smoothing: ChromaSmoothing | None = ChromaSmoothing.from_spec(spec.extra.get("chroma_smoothing"))
        self.space = get_color_space(spec.color_space)
        self.backend: Backend = backend or self._torch_backend
        self.backend_name = "torch" if backend is None else "custom"
        self.precision = "fp32"  # what the network computes in: fp32, bf16 or int8
        # Color points are spread by propagation over the prediction (for a point-guided network,
        # over its prediction with the points); False: the network's own use of them only.
        self.propagate_points = True

    @classmethod
    def load(
        cls, name_or_path: str | Path | None = None, backend: str = "auto", precision: str = "auto"
    ) -> "Colorizer":
        """Load a model; ``backend`` is torch, onnx (exported once, then cached) or auto.

        auto runs onnxruntime when it is installed and an ONNX export of this model already
        exists (shipped beside the weights or cached by an earlier ``--backend onnx``): it is
        the faster backend on CPUs (benchmarks/foundation.py measures both); otherwise PyTorch.
        ``precision`` is fp32, bf16 (PyTorch), int8 (onnxruntime) or auto: see
        :mod:`chromalab.inference.precision`.
        """
        from chromalab.checkpoint import resolve_model_path
        from chromalab.errors import ChromalabError
        from chromalab.inference import onnx_backend as onnx
        from chromalab.inference import precision as inference_precision

        if backend not in ("auto", "torch", "onnx"):
            raise ChromalabError(f"unknown backend {backend!r}; use auto, torch or onnx")
        inference_precision.check_precision(precision)
        path = resolve_model_path(name_or_path)
        net, spec = load_network(path)
        colorizer = cls(net, spec)
        precision = colorizer._resolve_precision(path, precision, backend)
        if precision == "bf16":
            if backend == "onnx":
                raise ChromalabError("bf16 runs on the PyTorch backend; use --backend torch or auto")
            colorizer.backend = inference_precision.Bf16TorchBackend(net)
            colorizer.backend_name, colorizer.precision = "torch", "bf16"
            return colorizer
        if precision == "int8":
            if backend == "torch":
                raise ChromalabError("int8 runs on the onnx backend; use --backend onnx or auto")
            colorizer.backend = onnx.OnnxBackend(colorizer._int8_file(path))
            colorizer.backend_name, colorizer.precision = "onnx", "int8"
            return colorizer
        if backend == "torch" or not onnx.exportable(net):
            if backend == "onnx":
                raise ChromalabError(f"{path}: this model samples at inference; use --backend torch")
            return colorizer
        if not onnx.onnxruntime_available():
            if backend == "onnx":
                raise ChromalabError("--backend onnx needs onnxruntime (pip install onnxruntime)")
            return colorizer
        onnx_file = onnx.cached_onnx_path(path)
        if not onnx_file.is_file():
            if backend == "auto":
                return colorizer
            onnx.export_onnx(net, onnx_file, size=spec.size)
        colorizer.backend = onnx.OnnxBackend(onnx_file)
        colorizer.backend_name = "onnx"
        return colorizer

    def _int8_file(self, model_file: Path) -> Path:
        from chromalab.errors import ChromalabError
        from chromalab.inference import onnx_backend as onnx
        from chromalab.inference.precision import int8_onnx_path

        if not onnx.onnxruntime_available():
            raise ChromalabError("int8 needs onnxruntime (pip install onnxruntime)")
        int8_file = int8_onnx_path(model_file)
        if not int8_file.is_file():
            raise ChromalabError(
                f"{model_file}: no int8 export yet; make one with: chromalab export --model {model_file} "
                f"--format onnx --int8 --calibration PHOTOS --out {int8_file}"
            )
        return int8_file

    def _resolve_precision(self, model_file: Path, precision: str, backend: str) -> str:
        """``auto`` is the precision the model file records as measured and safe, if it runs here."""
        from chromalab.inference import onnx_backend as onnx
        from chromalab.inference.precision import int8_onnx_path
        from chromalab.precision import cpu_has_bf16

        if precision != "auto":
            return precision
        recorded = self.spec.extra.get("auto_precision", "fp32")
        if recorded == "bf16" and cpu_has_bf16() and backend != "onnx":
            return "bf16"
        if (recorded == "int8" and backend != "torch" and onnx.onnxruntime_available()
                and int8_onnx_path(model_file).is_file()):
            return "int8"
        return "fp32"

    def _torch_backend(self, l_norm: torch.Tensor, **options: Any) -> torch.Tensor:
        return self.net.predict(l_norm, **options)

    @torch.inference_mode()
    def predict_ab(self, l_norm: torch.Tensor, **options: Any) -> torch.Tensor:
        """Normalized a*b* (B, 2, h, w) for normalized L (B, 1, h, w)."""
        # An exported graph holds the network's default decoding only (a classifier's annealed-
        # mean temperature, say): options that change it are run on the PyTorch network.
        backend = self._torch_backend if options and self.backend_name == "onnx" else self.backend
        prediction = backend(l_norm, **options)
        ab = self.space.to_ab(l_norm, prediction)
        return ab * self.saturation if self.saturation != 1.0 else ab

    @torch.inference_mode()
    def colorize_images(
        self,
        images: Sequence[Image.Image],
        size: int | None = None,
        ab_transform: AbTransform | None = None,
        points: Sequence[Sequence[PointLike] | None] | None = None,
        **options: Any,
    ) -> list[Image.Image]:
        """Colorize photos (any sizes, gray or color) in one forward pass; same sizes out.

        ``points``: one list of color points per photo (or None), each ``(x, y, "#rrggbb")``
        in the photo's pixels (chromalab.inference.points); they correct the prediction by
        edge-aware propagation (chromalab.inference.propagation).
        """
        point_sets = per_photo_points(images, points)
        if self.takes_points and any(point_sets):  # a point-guided network sees them too
            options["hints"] = points_to_hints(point_sets, [image.size for image in images], size or self.spec.size)
        ab_small = self.predict_photos(images, size=size, ab_transform=ab_transform, **options)
        if not self.propagate_points:
            return [self.merge(image, ab) for image, ab in zip(images, ab_small)]
        return [self.merge(image, with_points(image, ab, chosen)) for image, ab, chosen in zip(images, ab_small, point_sets)]

    @property
    def takes_points(self) -> bool:
        """Whether the network itself takes color points (a point-guided model)."""
        return bool(getattr(self.net, "takes_points", False))

    @torch.inference_mode()
    def predict_photos(
        self,
        images: Sequence[Image.Image],
        size: int | None = None,
        ab_transform: AbTransform | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """The small half of colorizing: each photo's a*b* (B, 2, size, size), normalized, with
        the user's controls and the model's smoothing applied; ``merge`` makes the photos."""
        if not images:
            return torch.empty(0, 2, 0, 0)
        size = size or self.spec.size
        l_small = torch.cat([model_input(image, size) for image in images])
        return self.finish_ab(images, l_small, self.predict_ab(l_small, **options), ab_transform)

    @staticmethod
    def merge(image: Image.Image, ab_small: torch.Tensor) -> Image.Image:
        """The full-resolution half: the photo's own L* with ``ab_small`` (2, h, w) upsampled."""
        return Image.fromarray(merge_full_resolution(full_resolution_lightness(image), ab_small.unsqueeze(0)))

    def finish_ab(
        self,
        images: Sequence[Image.Image],
        l_small: torch.Tensor,
        ab_small: torch.Tensor,
        ab_transform: AbTransform | None = None,
    ) -> torch.Tensor:
        """The network's a*b* after the user's controls and the model's chroma smoothing (whose
        guide is each photo's L* on the smoothing grid); still small, not yet at photo size."""
        if ab_transform is not None:
            ab_small = ab_transform(l_small, ab_small)
        if self.smoothing is None:
            return ab_small
        work = self.smoothing.work_size(l_small.shape[-1])
        guide = l_small if work == l_small.shape[-1] else torch.cat([model_input(image, work) for image in images])
        return self.smoothing(guide, ab_small)

    def colorize(
        self, image: Image.Image, size: int | None = None, points: Sequence[PointLike] | None = None, **options: Any
    ) -> Image.Image:
        """One photo; ``points``: its color points, ``[(x, y, "#rrggbb"), ...]``."""
        return self.colorize_images([image], size=size, points=[points] if points else None, **options)[0]


def per_photo_points(
    images: Sequence[Image.Image], points: Sequence[Sequence[PointLike] | None] | None
) -> list[list[ColorPoint]]:
    """Each photo's points, checked (a bad point or one outside its photo is one line)."""
    from chromalab.errors import ChromalabError

    if points is None:
        return [[] for _ in images]
    if len(points) != len(images):
        raise ChromalabError(f"points: {len(points)} point lists for {len(images)} photos; give one per photo (or None)")
    checked = []
    for number, (image, items) in enumerate(zip(images, points), 1):
        where = "points" if len(images) == 1 else f"points of photo {number}"
        chosen = make_points(items, where)
        check_inside(chosen, image.width, image.height, where)
        checked.append(chosen)
    return checked


def with_points(image: Image.Image, ab_small: torch.Tensor, points: Sequence[ColorPoint],
                guide: PointGuide | None = None) -> torch.Tensor:
    """``ab_small`` (2, h, w) corrected by ``points``; unchanged (the same tensor) without any.
    ``guide``: the photo's PointGuide when the caller keeps one (the web page does)."""
    if not points:
        return ab_small
    return (guide or PointGuide(image)).spread(ab_small, points)
