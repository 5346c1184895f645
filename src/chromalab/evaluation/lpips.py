"""ST-LPIPS (shift-tolerant LPIPS, VGG trunk) from the optional ``stlpips-pytorch`` package.

The package imports ``torchvision``, ``IPython`` and ``torchsummary`` at module level but never
uses them for the shift-tolerant VGG network. None of them is a chromalab dependency (and
torchvision does not import beside this torch), so while the package is imported we put
minimal stand-in modules in ``sys.modules`` — only for names that are really absent — and
remove them again afterwards, so no other code ever sees a fake module.

The weights ship inside the package (``weights/vST0.0/vgg_shift_tolerant.pth``): nothing is
downloaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

import torch
from torch import nn

# module name -> attributes the package's imports look up (never called for ST-LPIPS VGG).
_UNUSED_IMPORTS: dict[str, tuple[str, ...]] = {
    "torchvision": ("models",),
    "IPython": ("embed",),
    "torchsummary": ("summary",),
}


def stlpips_available() -> bool:
    return importlib.util.find_spec("stlpips_pytorch") is not None


def _stand_in(name: str, attributes: tuple[str, ...]) -> types.ModuleType:
    module = types.ModuleType(name, f"chromalab stand-in: {name} is not installed")

    def unavailable(*_: Any, **__: Any) -> None:
        raise RuntimeError(f"{name} is not installed (chromalab stand-in module)")

    for attribute in attributes:
        setattr(module, attribute, unavailable)
    # `from torchvision import models as tv` then `tv.vgg16(...)`: models must be a namespace.
    if "models" in attributes:
        models = types.ModuleType(f"{name}.models")
        models.__getattr__ = lambda _attr: unavailable  # type: ignore[method-assign]
        module.models = models  # type: ignore[attr-defined]
    return module


def import_stlpips() -> types.ModuleType:
    """Import ``stlpips_pytorch.stlpips`` with stand-ins for its unused, absent imports."""
    if "stlpips_pytorch.stlpips" in sys.modules:
        return sys.modules["stlpips_pytorch.stlpips"]
    if not stlpips_available():
        raise ModuleNotFoundError("stlpips-pytorch is not installed (pip install 'chromalab[lpips]')")
    installed: list[str] = []
    try:
        for name, attributes in _UNUSED_IMPORTS.items():
            if name not in sys.modules and importlib.util.find_spec(name) is None:
                sys.modules[name] = _stand_in(name, attributes)
                installed.append(name)
        return importlib.import_module("stlpips_pytorch.stlpips")
    finally:
        for name in installed:
            sys.modules.pop(name, None)


def load_stlpips_vgg() -> nn.Module:
    """The ST-LPIPS VGG network in eval mode, weights checked to be complete."""
    metric = import_stlpips().LPIPS(net="vgg", variant="shift_tolerant", pretrained=False, verbose=False)
    # The package loads with strict=False, which would silently leave random layers; load
    # the shipped weights ourselves and insist every parameter is covered.
    weights_file = (
        importlib.util.find_spec("stlpips_pytorch").submodule_search_locations[0]  # type: ignore[union-attr]
        + "/weights/vST0.0/vgg_shift_tolerant.pth"
    )
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    missing, _unexpected = metric.load_state_dict(state, strict=False)
    # ``lins.K`` is the same module as ``linK`` (registered twice), so it is loaded too.
    missing = [key for key in missing if not key.startswith("lins.")]
    if missing:
        raise RuntimeError(f"ST-LPIPS weights lack {len(missing)} tensors, e.g. {missing[0]}")
    metric.eval()
    for parameter in metric.parameters():
        parameter.requires_grad_(False)
    return metric


class LpipsScorer:
    """ST-LPIPS distances to a batch of ground truths whose VGG features are computed once.

    ``LPIPS.forward`` runs the VGG trunk on both images of every pair; when several models
    are scored against the same photos, the truth's half of that work is shared. The result
    equals ``LPIPS.forward(output, truth)`` (the tests check it).
    """

    def __init__(self, device: str | torch.device = "cpu", chunk: int = 4) -> None:
        self.device = torch.device(device)
        self.metric = load_stlpips_vgg().to(self.device)
        self.chunk = chunk  # VGG activations at 256² are ~100 MB an image: keep batches small

    @torch.inference_mode()
    def features(self, images_u8: torch.Tensor) -> list[list[torch.Tensor]]:
        """Unit-normalized VGG activations per chunk of the batch."""
        normalize = import_stlpips().utils.normalize_tensor  # type: ignore[attr-defined]
        chunks = []
        for start in range(0, len(images_u8), self.chunk):
            x = images_u8[start : start + self.chunk].to(self.device, torch.float32) / 127.5 - 1.0
            outputs = self.metric.net.forward(self.metric.scaling_layer(x))
            chunks.append([normalize(outputs[k]) for k in range(self.metric.L)])
        return chunks

    @torch.inference_mode()
    def distances(self, truth_features: list[list[torch.Tensor]], outputs_u8: torch.Tensor) -> torch.Tensor:
        """(B,) distances between ``outputs_u8`` and the truths ``truth_features`` came from."""
        values = []
        for truth, output in zip(truth_features, self.features(outputs_u8)):
            total = 0
            for k in range(self.metric.L):
                total = total + self.metric.lins[k]((truth[k] - output[k]) ** 2).mean(dim=(2, 3), keepdim=True)
            values.append(total.flatten().cpu())
        return torch.cat(values).to(torch.float64)
