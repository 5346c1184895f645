"""Creative color controls: temperature, hue, saturation and a reference photo's palette.

Each control is an *ab transform*: ``(l_norm, ab_norm) -> ab_norm`` on the model-size tensors
(B, 1, h, w) / (B, 2, h, w) (see :data:`chromalab.inference.colorizer.AbTransform`). The final
photo is always rebuilt from the original full-resolution L*, so no control can change
lightness; they only move a*b*.

The controls apply in a fixed order, like a photo editor's develop panel:

1. ``reference`` — match the chroma statistics to a reference photo (palette transfer),
2. ``temperature`` — white balance (chromatic adaptation toward a warmer or cooler light),
3. ``hue`` — rotate every color around the a*b* origin,
4. ``saturation`` — scale chroma (so ``saturation=0`` is always a neutral gray photo),

and finally colors pushed outside the sRGB gamut have their chroma reduced (hue and L* kept)
rather than being clipped in RGB, which would shift their lightness and hue.

Definitions (also in docs/controls-and-video.md):

* **temperature** T in [-1, 1]: a shift of the scene's white along the Planckian (black-body)
  locus by ``T * 110`` mired from 6504 K (D65's correlated colour temperature), applied as a
  Bradford chromatic adaptation in XYZ. T = +1 is a 3790 K light (about a Wratten 85 warming
  filter, +112 mired), T = -1 about 23 000 K (a strong cooling filter). Positive = warmer:
  b* rises and a* rises slightly; neutral grays take the new white's tint.
* **hue** H degrees: rotation of (a*, b*) by H, counter-clockwise (from +a* red toward +b*
  yellow), i.e. every CIELAB hue angle h_ab increases by H.
* **saturation** S >= 0: chroma C*_ab multiplied by S (0 = gray, 1 = unchanged, 2 = double).
* **reference**: the linear Monge–Kantorovich map (Pitié & Kokaram 2007) between the Gaussian
  fitted to the output's a*b* and the Gaussian fitted to the reference photo's a*b*: the
  optimal-transport map that gives the output exactly the reference's a*b* mean and 2x2
  covariance while moving colors as little as possible (unlike Reinhard's per-channel
  matching, it respects the a*-b* correlation). The map never stretches the spread more than
  ``MAX_REFERENCE_GAIN`` (3x) along any axis, so a nearly gray output's noise is not blown
  up into false colors; the mean is always matched exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import kornia.color as kc
import numpy as np
import torch
from PIL import Image

from chromalab.color import (
    denormalize_ab,
    denormalize_l,
    normalize_ab,
    normalize_l,
    rgb_to_lab,
    uint8_to_float,
)
from chromalab.errors import ChromalabError
from chromalab.inference.colorizer import AbTransform

NEUTRAL_CCT = 6504.0  # kelvin: the correlated colour temperature of D65, the Lab white
TEMPERATURE_MIRED = 110.0  # |T| = 1 moves the white this many mired (a Wratten 85 is +112)
REFERENCE_SIDE = 256  # reference statistics are measured on a thumbnail this large
COVARIANCE_FLOOR = (0.5 / 110.0) ** 2  # (0.5 Lab unit)^2: keeps a near-gray output's map finite
MAX_REFERENCE_GAIN = 3.0  # the reference map stretches the output's a*b* spread at most this much

# Bradford cone-response matrix (Lam 1985), the CAT used by ICC profiles and Photoshop.
BRADFORD = torch.tensor([
    [0.8951, 0.2664, -0.1614],
    [-0.7502, 1.7135, 0.0367],
    [0.0389, -0.0685, 1.0296],
], dtype=torch.float64)


@dataclass(frozen=True)
class ColorControls:
    """The user's creative settings; the defaults change nothing."""

    temperature: float = 0.0  # [-1, 1], + warmer
    hue: float = 0.0  # degrees
    saturation: float = 1.0  # chroma multiplier, >= 0
    reference: "str | Path | Image.Image | None" = None  # a photo whose palette to match

    @property
    def neutral(self) -> bool:
        return (
            self.temperature == 0.0
            and math.remainder(self.hue, 360.0) == 0.0
            and self.saturation == 1.0
            and self.reference is None
        )

    def validate(self) -> None:
        if not math.isfinite(self.temperature) or not -1.0 <= self.temperature <= 1.0:
            raise ChromalabError(f"temperature must be between -1 (cooler) and 1 (warmer), got {self.temperature}")
        if not math.isfinite(self.hue):
            raise ChromalabError(f"hue must be a finite number of degrees, got {self.hue}")
        if not math.isfinite(self.saturation) or self.saturation < 0.0:
            raise ChromalabError(f"saturation must be 0 or more (1 = unchanged), got {self.saturation}")


# --- the individual transforms ---------------------------------------------------------------


def rotate_hue(ab_norm: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate (a*, b*) counter-clockwise by ``degrees`` (a scalar, or one angle per batch item)."""
    angle = torch.as_tensor(degrees, dtype=ab_norm.dtype, device=ab_norm.device).deg2rad()
    cos, sin = angle.cos().reshape(-1, 1, 1), angle.sin().reshape(-1, 1, 1)
    a, b = ab_norm[:, 0], ab_norm[:, 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=1)


def scale_saturation(ab_norm: torch.Tensor, factor: float) -> torch.Tensor:
    return ab_norm * factor


def planckian_chromaticity(kelvin: float) -> tuple[float, float]:
    """CIE 1931 xy of a black body at ``kelvin`` (Kim et al. 2002 cubic fit, 1667-25000 K).

    Written out because neither kornia nor scikit-image has it, and colour-science would be a
    heavy dependency for six polynomials.
    """
    t = min(max(kelvin, 1667.0), 25000.0)
    if t <= 4000.0:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222.0:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000.0:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def temperature_kelvin(temperature: float) -> float:
    """The target light's colour temperature for a control value in [-1, 1] (+ = warmer)."""
    return 1e6 / (1e6 / NEUTRAL_CCT + TEMPERATURE_MIRED * temperature)


def _xyz_of_white(x: float, y: float) -> torch.Tensor:
    return torch.tensor([x / y, 1.0, (1.0 - x - y) / y], dtype=torch.float64)


def bradford_adaptation(source_white: torch.Tensor, target_white: torch.Tensor) -> torch.Tensor:
    """3x3 XYZ -> XYZ matrix taking colors seen under one white (XYZ, Y = 1) to another.

    von Kries scaling in Bradford's sharpened cone space (written out: kornia has no
    chromatic-adaptation transform).
    """
    scale = (BRADFORD @ target_white.double()) / (BRADFORD @ source_white.double())
    return torch.linalg.inv(BRADFORD) @ torch.diag(scale) @ BRADFORD


def bradford_matrix(source_kelvin: float, target_kelvin: float) -> torch.Tensor:
    """The Bradford adaptation between two black-body lights (both whites at Y = 1)."""
    return bradford_adaptation(
        _xyz_of_white(*planckian_chromaticity(source_kelvin)),
        _xyz_of_white(*planckian_chromaticity(target_kelvin)),
    )


def adapt_temperature(l_norm: torch.Tensor, ab_norm: torch.Tensor, temperature: float) -> torch.Tensor:
    """White-balance the colorized (L, ab) toward a warmer (+) or cooler (-) light; new ab."""
    matrix = bradford_matrix(NEUTRAL_CCT, temperature_kelvin(temperature)).to(ab_norm)
    lab = torch.cat([denormalize_l(l_norm), denormalize_ab(ab_norm)], dim=1)
    # Unclipped on purpose: the adaptation is linear in XYZ and the final merge clips once.
    xyz = kc.rgb_to_xyz(kc.rgb_to_linear_rgb(kc.lab_to_rgb(lab, clip=False)))
    adapted = torch.einsum("ij,bjhw->bihw", matrix, xyz)
    lab_out = kc.rgb_to_lab(kc.linear_rgb_to_rgb(kc.xyz_to_rgb(adapted)))
    return normalize_ab(lab_out[:, 1:])


def fit_gamut(l_norm: torch.Tensor, ab_norm: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Shrink the chroma of out-of-gamut pixels until they fit sRGB at their own L*.

    Clipping RGB (what the final merge would do) shifts both lightness and hue of a color the
    controls pushed out of gamut; scaling its a*b* toward gray keeps both. A bisection on the
    scale (``steps`` halvings: within 0.4 % of the largest in-gamut chroma), only for the
    pixels that need it, because the sRGB boundary has no closed form in Lab.
    """

    def fits(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        rgb = kc.lab_to_rgb(torch.cat([lightness, ab], dim=1), clip=False)
        return ((rgb >= -1e-3) & (rgb <= 1.0 + 1e-3)).all(dim=1)

    lightness, ab = denormalize_l(l_norm), denormalize_ab(ab_norm)
    outside = ~fits(lightness, ab)  # (B, h, w)
    if not bool(outside.any()):
        return ab_norm
    # The out-of-gamut pixels as one (1, C, N, 1) column, so the search touches nothing else.
    column_l = lightness.permute(0, 2, 3, 1)[outside].T[None, :, :, None]
    column_ab = ab.permute(0, 2, 3, 1)[outside].T[None, :, :, None]
    low, high = torch.zeros_like(column_l), torch.ones_like(column_l)
    for _ in range(steps):
        middle = (low + high) / 2.0
        ok = fits(column_l, column_ab * middle)[:, None]
        low, high = torch.where(ok, middle, low), torch.where(ok, high, middle)
    fitted = ab.permute(0, 2, 3, 1).clone()
    fitted[outside] = (column_ab * low)[0, :, :, 0].T
    return normalize_ab(fitted.permute(0, 3, 1, 2))


# --- reference palette transfer ---------------------------------------------------------------


@dataclass(frozen=True)
class AbStatistics:
    """Mean (2,) and covariance (2, 2) of normalized a*b*."""

    mean: torch.Tensor
    covariance: torch.Tensor

    @classmethod
    def of(cls, ab_norm: torch.Tensor) -> "AbStatistics":
        """Statistics of one (2, h, w) chroma image."""
        samples = ab_norm.reshape(2, -1).double()
        return cls(samples.mean(dim=1), torch.cov(samples))


def _sqrtm_spd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Square root and inverse square root of a symmetric positive-(semi)definite matrix."""
    values, vectors = torch.linalg.eigh(matrix)
    values = values.clamp(min=1e-12)  # rounding can make a zero eigenvalue slightly negative
    root = vectors @ torch.diag(values.sqrt()) @ vectors.T
    inverse_root = vectors @ torch.diag(values.rsqrt()) @ vectors.T
    return root, inverse_root


def monge_kantorovich_map(source: AbStatistics, target: AbStatistics) -> torch.Tensor:
    """The 2x2 matrix T with T S T = R (the linear optimal-transport map between Gaussians).

    T = S^-1/2 (S^1/2 R S^1/2)^1/2 S^-1/2 (Pitié & Kokaram 2007), with S regularized by
    ``COVARIANCE_FLOOR`` (so the output's covariance is R - floor * T^2, within a few percent). Hand-written because it is
    four lines of linear algebra and no dependency offers it for torch tensors.
    """
    # Only the source is regularized (it may be a nearly gray output); the target is matched.
    floor = COVARIANCE_FLOOR * torch.eye(2, dtype=torch.float64)
    s_root, s_inverse_root = _sqrtm_spd(source.covariance + floor)
    middle, _ = _sqrtm_spd(s_root @ target.covariance @ s_root)
    return s_inverse_root @ middle @ s_inverse_root


def limit_gain(matrix: torch.Tensor, max_gain: float) -> torch.Tensor:
    """Cap the stretch of a symmetric positive map at ``max_gain`` along every axis.

    A nearly gray colorization has a tiny a*b* spread; matching a colorful reference's spread
    exactly would multiply its noise into false rainbow colors. Capping the eigenvalues of the
    map keeps its directions and the exact mean, and gives up only the last part of the spread.
    """
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp(max=max_gain)) @ vectors.T


def match_reference(ab_norm: torch.Tensor, reference: AbStatistics) -> torch.Tensor:
    """Give each image of the batch the reference's a*b* mean and covariance."""
    out = torch.empty_like(ab_norm)
    for index, image in enumerate(ab_norm):
        stats = AbStatistics.of(image)
        matrix = limit_gain(monge_kantorovich_map(stats, reference), MAX_REFERENCE_GAIN).to(image)
        centered = image.reshape(2, -1) - stats.mean.to(image)[:, None]
        moved = matrix @ centered + reference.mean.to(image)[:, None]
        out[index] = moved.reshape(image.shape)
    return out


def reference_statistics(reference: "str | Path | Image.Image") -> AbStatistics:
    """The a*b* statistics of a reference photo (path or PIL image); gray photos are refused."""
    from chromalab.data.images import is_grayscale, open_rgb

    image = reference if isinstance(reference, Image.Image) else open_rgb(reference, draft_size=REFERENCE_SIDE)
    name = "reference image" if isinstance(reference, Image.Image) else str(reference)
    if is_grayscale(image):
        raise ChromalabError(f"{name}: reference photo is grayscale; it has no colors to match")
    small = image.convert("RGB")
    small.thumbnail((REFERENCE_SIDE, REFERENCE_SIDE), Image.Resampling.BILINEAR)
    array = torch.from_numpy(np.asarray(small, dtype=np.uint8).copy()).permute(2, 0, 1).unsqueeze(0)
    ab = normalize_ab(rgb_to_lab(uint8_to_float(array))[:, 1:])
    return AbStatistics.of(ab[0])


# --- composing the user's controls -------------------------------------------------------------


class ControlTransform:
    """The user's controls as one AbTransform (applied in the module's documented order)."""

    def __init__(self, controls: ColorControls, reference: AbStatistics | None) -> None:
        self.controls = controls
        self.reference = reference

    def __call__(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        controls = self.controls
        if self.reference is not None:
            ab_norm = match_reference(ab_norm, self.reference)
        if controls.temperature != 0.0:
            ab_norm = adapt_temperature(l_norm, ab_norm, controls.temperature)
        if math.remainder(controls.hue, 360.0) != 0.0:
            ab_norm = rotate_hue(ab_norm, controls.hue)
        if controls.saturation != 1.0:
            ab_norm = scale_saturation(ab_norm, controls.saturation)
        return fit_gamut(l_norm, ab_norm)

    def __repr__(self) -> str:
        return f"ControlTransform({self.controls})"


def make_ab_transform(controls: ColorControls | None) -> AbTransform | None:
    """An AbTransform for ``Colorizer.colorize_images``; None when every control is neutral.

    Validates the settings and reads the reference photo once (ChromalabError / BadImageError
    with a one-line reason if it is unusable).
    """
    if controls is None or controls.neutral:
        return None
    controls.validate()
    reference = reference_statistics(controls.reference) if controls.reference is not None else None
    return ControlTransform(controls, reference)


# --- training-time mood augmentation -------------------------------------------------------------

MOOD_MAX_DEGREES = 30.0  # hue rotations are drawn uniformly from +-this
MOOD_PROBABILITY = 0.5  # the share of training photos that get one


@torch.no_grad()
def mood_shift(
    rgb: torch.Tensor,
    max_degrees: float = MOOD_MAX_DEGREES,
    probability: float = MOOD_PROBABILITY,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Randomly hue-rotate a share of a float sRGB batch in a*b*, keeping every pixel's L*.

    Returns sRGB, so every color space's target can be computed from it; colors the rotation
    takes out of the gamut lose chroma (``fit_gamut``), not lightness or hue. Angles and coin
    flips are drawn per photo from ``generator`` (the global RNG if None).
    """
    batch = rgb.shape[0]
    angles = (torch.rand(batch, generator=generator) * 2.0 - 1.0) * max_degrees
    chosen = torch.rand(batch, generator=generator) < probability
    angles = torch.where(chosen, angles, torch.zeros_like(angles)).to(rgb.device)
    lab = rgb_to_lab(rgb)
    l_norm, ab_norm = normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])
    ab_norm = fit_gamut(l_norm, rotate_hue(ab_norm, angles))
    shifted = kc.lab_to_rgb(torch.cat([lab[:, :1], denormalize_ab(ab_norm)], dim=1), clip=True)
    # Untouched photos stay bit-exact rather than taking a Lab round trip.
    return torch.where(chosen.view(-1, 1, 1, 1), shifted, rgb)
