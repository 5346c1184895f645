"""Color spaces and the one definition of how chromalab normalizes lightness and chroma.

Every model sees the same input: the photo's CIELAB lightness L* scaled to [-1, 1]. What it
predicts depends on the color space it was trained in ("chroma channels" of that space, or RGB
for RGB-output models). Whatever the space, a colorized photo is finally rebuilt in Lab from the
*original* L* and the predicted a*b*, so lightness is always preserved exactly.

All conversions run on batches of torch tensors (B, C, H, W) through kornia, so they are
differentiable and run wherever the model runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import kornia.color as kc
import torch

# --- The normalization, defined once -------------------------------------------------------
L_CENTER = 50.0  # L* in [0, 100]  ->  (L - 50) / 50 in [-1, 1]
L_SCALE = 50.0
AB_SCALE = 110.0  # a*, b* of sRGB colors lie within about +-110  ->  ab / 110 in ~[-1, 1]

NORMALIZATION = {"l_center": L_CENTER, "l_scale": L_SCALE, "ab_scale": AB_SCALE}


def normalize_l(lightness: torch.Tensor) -> torch.Tensor:
    return (lightness - L_CENTER) / L_SCALE


def denormalize_l(l_norm: torch.Tensor) -> torch.Tensor:
    return l_norm * L_SCALE + L_CENTER


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    return ab / AB_SCALE


def denormalize_ab(ab_norm: torch.Tensor) -> torch.Tensor:
    return ab_norm * AB_SCALE


# --- sRGB <-> Lab -------------------------------------------------------------------------


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (B, 3, H, W) -> CIELAB (D65): L* in [0, 100], a*, b* unbounded."""
    return kc.rgb_to_lab(rgb.clamp(0.0, 1.0))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB -> sRGB in [0, 1], clipped to the gamut."""
    return kc.lab_to_rgb(lab, clip=True)


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


def rgb_to_l_norm(rgb: torch.Tensor) -> torch.Tensor:
    """The model input: normalized L* of an sRGB batch, (B, 1, H, W)."""
    return normalize_l(rgb_to_lab(rgb)[:, :1])


def gray_rgb_from_l_norm(l_norm: torch.Tensor) -> torch.Tensor:
    """The neutral sRGB gray with the given L* (a* = b* = 0), as 3 equal channels."""
    zeros = torch.zeros_like(l_norm)
    lab = torch.cat([denormalize_l(l_norm), zeros, zeros], dim=1)
    return lab_to_rgb(lab)


def compose_lab(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """Join normalized L and ab into sRGB in [0, 1]."""
    return lab_to_rgb(torch.cat([denormalize_l(l_norm), denormalize_ab(ab_norm)], dim=1))


# --- Color spaces a model can be trained in -----------------------------------------------


@dataclass(frozen=True)
class ColorSpace:
    """How a color space turns a photo into a training target, and a prediction into sRGB.

    ``target`` maps sRGB [0, 1] to the normalized channels a model predicts (about [-1, 1]);
    ``to_rgb`` maps normalized L plus a prediction back to sRGB [0, 1].
    """

    name: str
    channels: int
    target: Callable[[torch.Tensor], torch.Tensor]
    to_rgb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    description: str

    def to_ab(self, l_norm: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """A prediction in this space as normalized a*b* (the common currency of inference)."""
        if self.name == "lab":
            return prediction
        return normalize_ab(rgb_to_lab(self.to_rgb(l_norm, prediction))[:, 1:])


def _lab_target(rgb: torch.Tensor) -> torch.Tensor:
    return normalize_ab(rgb_to_lab(rgb)[:, 1:])


def _rgb_target(rgb: torch.Tensor) -> torch.Tensor:
    return rgb * 2.0 - 1.0


def _rgb_to_rgb(l_norm: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    return ((pred + 1.0) / 2.0).clamp(0.0, 1.0)


def _ycbcr_target(rgb: torch.Tensor) -> torch.Tensor:
    return (kc.rgb_to_ycbcr(rgb)[:, 1:] - 0.5) * 2.0


def _solve_luma(l_norm: torch.Tensor, to_rgb: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """sRGB of the luma Y' (for fixed chroma) whose color has the photo's L*.

    Luma is gamma-encoded and L* is not, so a colored pixel's Y' differs from the gray level
    with the same L*. Start from that gray level and correct by the L* error: d(L*)/d(Y') is
    close to that of the gray ramp, so three steps bring the error to a fraction of a unit.
    """
    gray = gray_rgb_from_l_norm(l_norm)[:, :1]
    luma = gray
    for _ in range(3):
        current = rgb_to_l_norm(to_rgb(luma).clamp(0.0, 1.0))
        luma = (luma + (gray - gray_rgb_from_l_norm(current)[:, :1])).clamp(0.0, 1.0)
    return to_rgb(luma).clamp(0.0, 1.0)


def _ycbcr_to_rgb(l_norm: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    cbcr = pred / 2.0 + 0.5
    return _solve_luma(l_norm, lambda luma: kc.ycbcr_to_rgb(torch.cat([luma, cbcr], dim=1)))


_U_MAX, _V_MAX = 0.436, 0.615  # the ranges of kornia's (BT.601) U and V


def _yuv_target(rgb: torch.Tensor) -> torch.Tensor:
    yuv = kc.rgb_to_yuv(rgb)
    return torch.cat([yuv[:, 1:2] / _U_MAX, yuv[:, 2:3] / _V_MAX], dim=1)


def _yuv_to_rgb(l_norm: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    uv = torch.cat([pred[:, :1] * _U_MAX, pred[:, 1:2] * _V_MAX], dim=1)
    return _solve_luma(l_norm, lambda luma: kc.yuv_to_rgb(torch.cat([luma, uv], dim=1)))


def _hsv_target(rgb: torch.Tensor) -> torch.Tensor:
    hsv = kc.rgb_to_hsv(rgb)
    return torch.cat([hsv[:, :1] / math.pi - 1.0, hsv[:, 1:2] * 2.0 - 1.0], dim=1)


def _relative_luminance(rgb: torch.Tensor) -> torch.Tensor:
    linear = kc.rgb_to_linear_rgb(rgb.clamp(0.0, 1.0))
    return 0.2126 * linear[:, :1] + 0.7152 * linear[:, 1:2] + 0.0722 * linear[:, 2:3]


def _luminance_from_l_norm(l_norm: torch.Tensor) -> torch.Tensor:
    lightness = denormalize_l(l_norm).clamp(0.0, 100.0)
    cube = ((lightness + 16.0) / 116.0) ** 3
    return torch.where(lightness > 8.0, cube, lightness / 903.3)


def _hsv_to_rgb(l_norm: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    # HSV's V is max(R, G, B), not lightness, so it cannot come from L* directly: we solve
    # for the V whose color (with the predicted H and S) has the photo's luminance. Scaling V
    # scales every sRGB channel, so luminance grows monotonically with it; with the ~2.2
    # gamma a multiplicative update converges in a few steps.
    hue = ((pred[:, :1] + 1.0) * math.pi).remainder(2.0 * math.pi)
    sat = ((pred[:, 1:2] + 1.0) / 2.0).clamp(0.0, 1.0)
    full = kc.hsv_to_rgb(torch.cat([hue, sat, torch.ones_like(hue)], dim=1))
    wanted = _luminance_from_l_norm(l_norm)
    value = torch.ones_like(hue)
    for _ in range(4):
        current = _relative_luminance(full * value).clamp_min(1e-6)
        value = (value * (wanted.clamp_min(1e-6) / current) ** (1.0 / 2.2)).clamp(0.0, 1.0)
    return (full * value).clamp(0.0, 1.0)


def _lab_to_rgb(l_norm: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    return compose_lab(l_norm, pred)


COLOR_SPACES: dict[str, ColorSpace] = {
    space.name: space
    for space in (
        ColorSpace("lab", 2, _lab_target, _lab_to_rgb, "CIELAB a*b* (/110)"),
        ColorSpace("rgb", 3, _rgb_target, _rgb_to_rgb, "sRGB, all three channels (x2-1)"),
        ColorSpace("ycbcr", 2, _ycbcr_target, _ycbcr_to_rgb, "YCbCr (BT.601) Cb, Cr"),
        ColorSpace("yuv", 2, _yuv_target, _yuv_to_rgb, "YUV (BT.601) U, V"),
        ColorSpace("hsv", 2, _hsv_target, _hsv_to_rgb, "HSV hue and saturation"),
    )
}


def get_color_space(name: str) -> ColorSpace:
    try:
        return COLOR_SPACES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown color space {name!r}; choose one of {', '.join(COLOR_SPACES)}"
        ) from None


def chroma(ab_norm: torch.Tensor) -> torch.Tensor:
    """C*ab of normalized ab, in Lab units, (B, 1, H, W)."""
    return denormalize_ab(ab_norm).norm(dim=1, keepdim=True)
