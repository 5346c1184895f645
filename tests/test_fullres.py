"""The fast full-resolution pipeline against the reference conversions (kornia, scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from chromalab.color import denormalize_ab, float_to_uint8, lab_to_rgb, normalize_l, rgb_to_lab, uint8_to_float
from chromalab.inference import fullres
from tests.conftest import synthetic_photo


def reference_lightness(image: Image.Image) -> np.ndarray:
    return rgb2lab(np.asarray(image.convert("RGB")))[..., 0]


def reference_merge(lightness: torch.Tensor, ab_small: torch.Tensor) -> np.ndarray:
    """What chromalab computed before: bilinear ab, kornia's Lab -> sRGB, rounded to bytes."""
    ab = F.interpolate(ab_small, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
    rgb = lab_to_rgb(torch.cat([lightness, denormalize_ab(ab)], dim=1))
    return float_to_uint8(rgb)[0].permute(1, 2, 0).numpy()


def test_gray_table_is_the_lightness_of_every_gray_level() -> None:
    levels = np.arange(256, dtype=np.uint8)
    expected = rgb2lab(np.stack([levels] * 3, axis=-1)[None])[0, :, 0]
    np.testing.assert_allclose(fullres.gray_lightness_table(), expected, atol=1e-3)


@pytest.mark.parametrize("mode", ["L", "RGB-gray", "RGB", "LA", "P"])
def test_lightness_matches_scikit_image(mode: str) -> None:
    photo = synthetic_photo(3, 61, 47)
    image = {"L": photo.convert("L"), "RGB-gray": photo.convert("L").convert("RGB"), "RGB": photo,
             "LA": photo.convert("LA"), "P": photo.convert("P")}[mode]
    np.testing.assert_allclose(fullres.lightness_array(image), reference_lightness(image), atol=2e-3)


def test_merge_is_within_half_a_delta_e_of_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fullres, "STRIP_PIXELS", 997)  # many strips, a ragged last one
    generator = torch.Generator().manual_seed(0)
    for image in (synthetic_photo(5, 97, 64).convert("L"), synthetic_photo(6, 64, 97)):
        lightness = fullres.full_resolution_lightness(image)
        # Strong, varied chroma, out-of-gamut colors included: the clipping must agree too.
        ab_small = torch.rand(1, 2, 16, 16, generator=generator) * 1.6 - 0.8
        fast = fullres.merge_full_resolution(lightness, ab_small)
        slow = reference_merge(lightness, ab_small)
        assert fast.shape == slow.shape == (image.height, image.width, 3)
        delta = deltaE_ciede2000(rgb2lab(fast), rgb2lab(slow))
        # Bytes differ only at rounding ties (one level, in about 1 pixel of 10,000: as often as
        # kornia's own float32 differs from float64). One level of a dark green is 0.6 dE00, so
        # the 0.5 bound holds everywhere but at those ties.
        assert np.abs(fast.astype(int) - slow).max() <= 1
        assert (delta >= 0.5).mean() <= 5e-4 and delta.mean() < 0.01, (delta.max(), delta.mean())
        # Lightness is kept as before: |dL*| against the photo is the reference's.
        truth = reference_lightness(image)
        assert abs(np.abs(rgb2lab(fast)[..., 0] - truth).mean() - np.abs(rgb2lab(slow)[..., 0] - truth).mean()) < 0.05


def test_model_input_matches_the_reference_for_gray_and_color() -> None:
    for image in (synthetic_photo(8, 200, 150), synthetic_photo(8, 200, 150).convert("L")):
        small = image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=2.0)
        rgb = uint8_to_float(torch.from_numpy(np.array(small)).permute(2, 0, 1)[None])
        expected = normalize_l(rgb_to_lab(rgb)[:, :1])
        torch.testing.assert_close(fullres.model_input(image, 32), expected, atol=1e-4, rtol=0)


def test_dark_strong_yellows_are_clipped_as_kornia_clips_them() -> None:
    """Below L* 20 a b* over 200 f(Y) sends f(Z) negative: kornia clamps it at 0, OpenCV's
    conversion does not, so the fast path clamps b* first. Without that these bytes differ
    by up to ~20 levels."""
    levels = torch.tensor([0.0, 0.5, 2.0, 5.0, 8.0, 12.0, 20.0])
    b_values = torch.linspace(0.0, 1.0, 11)  # normalized: up to +110 b*
    lightness = levels.repeat_interleave(11).reshape(1, 1, 7, 11)
    ab_small = torch.stack([torch.full((7, 11), 0.3), b_values.repeat(7, 1)])[None]
    fast = fullres.merge_full_resolution(lightness, ab_small)
    slow = reference_merge(lightness, ab_small)
    assert np.abs(fast.astype(int) - slow).max() <= 1


def test_strips_converted_in_parallel_equal_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fullres, "STRIP_PIXELS", 500)  # 60 strips of a 300x100 photo
    lightness = fullres.full_resolution_lightness(synthetic_photo(9, 300, 100).convert("L"))
    ab_small = torch.rand(1, 2, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = fullres.merge_full_resolution(lightness, ab_small)
        torch.set_num_threads(3)
        parallel = fullres.merge_full_resolution(lightness, ab_small)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_array_equal(serial, fullres.merge_full_resolution(lightness.numpy(), ab_small))
