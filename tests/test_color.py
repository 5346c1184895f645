"""Color conversion against scikit-image, the normalization, and every color space's round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from chromalab.color import (
    AB_SCALE,
    COLOR_SPACES,
    compose_lab,
    denormalize_l,
    get_color_space,
    gray_rgb_from_l_norm,
    lab_to_rgb,
    normalize_ab,
    normalize_l,
    rgb_to_l_norm,
    rgb_to_lab,
)


def random_rgb(seed: int = 0, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=generator) * 0.9 + 0.05


def test_rgb_to_lab_matches_scikit_image() -> None:
    rgb = random_rgb()
    ours = rgb_to_lab(rgb).permute(0, 2, 3, 1).numpy()
    reference = skcolor.rgb2lab(rgb.permute(0, 2, 3, 1).numpy().astype(np.float64))
    np.testing.assert_allclose(ours, reference, atol=0.05)


def test_known_lab_values() -> None:
    # Primaries and white in CIELAB (D65), as tabulated by scikit-image / Bruce Lindbloom.
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]).T.reshape(1, 3, 3, 1)
    lab = rgb_to_lab(rgb)[0, :, :, 0].T
    expected = torch.tensor([[53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [100.0, 0.0, 0.0]])
    torch.testing.assert_close(lab, expected, atol=0.05, rtol=0)


def test_lab_round_trip_matches_scikit_image_inverse() -> None:
    rgb = random_rgb(1)
    lab = rgb_to_lab(rgb)
    back = lab_to_rgb(lab)
    torch.testing.assert_close(back, rgb, atol=1e-4, rtol=0)
    reference = skcolor.lab2rgb(lab.permute(0, 2, 3, 1).numpy().astype(np.float64))
    np.testing.assert_allclose(back.permute(0, 2, 3, 1).numpy(), reference, atol=1e-4)


def test_normalization_maps_lab_ranges_to_unit_interval() -> None:
    assert normalize_l(torch.tensor(0.0)) == -1 and normalize_l(torch.tensor(100.0)) == 1
    assert normalize_ab(torch.tensor(AB_SCALE)) == 1
    torch.testing.assert_close(denormalize_l(normalize_l(torch.tensor(37.5))), torch.tensor(37.5))


def test_gray_from_l_has_that_lightness_and_no_chroma() -> None:
    l_norm = rgb_to_l_norm(random_rgb(2))
    gray = gray_rgb_from_l_norm(l_norm)
    assert (gray.amax(dim=1) - gray.amin(dim=1)).max() < 2e-3
    torch.testing.assert_close(rgb_to_l_norm(gray), l_norm, atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", sorted(COLOR_SPACES))
def test_every_color_space_round_trips_to_the_same_ab(name: str) -> None:
    space = get_color_space(name)
    rgb = random_rgb(3)
    l_norm = rgb_to_l_norm(rgb)
    target = space.target(rgb)
    assert target.shape[1] == space.channels
    assert target.abs().max() <= 1.0 + 1e-5  # normalized targets fit a tanh output
    true_ab = normalize_ab(rgb_to_lab(rgb)[:, 1:])
    recovered = space.to_ab(l_norm, target)
    error = (recovered - true_ab).abs() * AB_SCALE
    # Within a fraction of a just-noticeable difference (ΔE ~ 2.3) everywhere.
    assert error.mean() < 0.05 and error.max() < 1.5, (name, error.mean(), error.max())
    # And the recomposed photo is the original (a few gamut-edge pixels differ by more).
    difference = (compose_lab(l_norm, recovered) - rgb).abs()
    assert difference.mean() < 1e-3 and difference.max() < 0.1


def test_unknown_color_space_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown color space 'xyz'"):
        get_color_space("xyz")
