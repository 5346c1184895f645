"""Edge-aware chroma smoothing: blotches evened out, edges that L* shows kept, stored in a model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color as skcolor

from chromalab import load_model
from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.inference.smoothing import ChromaSmoothing, box_mean, guided_filter
from tests.conftest import synthetic_photo


def step_lightness(size: int = 64) -> torch.Tensor:
    """Normalized L*: dark left half (L* 30), light right half (L* 70)."""
    lightness = torch.full((1, 1, size, size), 30.0)
    lightness[..., size // 2 :] = 70.0
    return (lightness - 50.0) / 50.0


def test_constant_chroma_stays_constant() -> None:
    ab = torch.tensor([0.2, -0.1]).view(1, 2, 1, 1).expand(1, 2, 16, 16)
    out = ChromaSmoothing()(step_lightness(), ab)
    assert out.shape == (1, 2, 64, 64)
    torch.testing.assert_close(out, torch.tensor([0.2, -0.1]).view(1, 2, 1, 1).expand_as(out), atol=1e-5, rtol=0)


def test_blotches_on_flat_lightness_are_evened_out() -> None:
    generator = torch.Generator().manual_seed(0)
    flat = torch.zeros(1, 1, 64, 64)
    ab = 0.3 + 0.2 * torch.randn(1, 2, 64, 64, generator=generator)
    out = ChromaSmoothing(radius=1 / 16)(flat, ab)
    assert out.std() < 0.25 * ab.std()
    assert abs(out.mean().item() - ab.mean().item()) < 0.01  # the average color is kept


def test_a_color_edge_that_lightness_shows_stays_sharp() -> None:
    """A chroma step on the L* step survives the guided filter; a plain blur of the same
    radius smears it across the boundary."""
    guide = step_lightness()
    ab = torch.zeros(1, 2, 64, 64)
    ab[:, 0, :, 32:] = 0.4
    guided = ChromaSmoothing(radius=1 / 16)(guide, ab)
    kernel = ChromaSmoothing(radius=1 / 16).kernel_size(64)
    blurred = F.avg_pool2d(F.pad(ab, [kernel // 2] * 4, mode="replicate"), kernel, stride=1)
    # Two pixels either side of the edge: the guided result keeps > 90% of the step.
    assert (guided[0, 0, :, 33] - guided[0, 0, :, 30]).min() > 0.36
    assert (blurred[0, 0, :, 33] - blurred[0, 0, :, 30]).max() < 0.2


def test_color_bleeding_past_an_edge_is_pulled_back() -> None:
    """Chroma upsampled from a coarse grid leaks across an L* edge; next to the edge, where
    the leak is strongest, the filter takes back more than a third of it."""
    guide = step_lightness()
    ab_coarse = torch.zeros(1, 2, 8, 8)
    ab_coarse[:, 1, :, 4:] = 0.5  # b* on the light half, at 1/8 of the resolution
    leaked = F.interpolate(ab_coarse, size=64, mode="bilinear", align_corners=False)
    out = ChromaSmoothing(radius=1 / 16, eps=1e-4)(guide, ab_coarse)
    assert leaked[0, 1, :, 31].min() > 0.2  # the dark column next to the edge, before ...
    assert out[0, 1, :, 31].max() < 0.6 * leaked[0, 1, :, 31].min()  # ... and after
    assert out[0, 1, :, 40:].min() > 0.45  # the light side keeps its color


@pytest.mark.parametrize("radius", [1, 4, 8])
def test_box_mean_is_the_mirrored_window_average(radius: int) -> None:
    x = torch.rand(2, 3, 40, 33, generator=torch.Generator().manual_seed(radius))
    k = 2 * radius + 1
    expected = F.avg_pool2d(F.pad(x, [radius] * 4, mode="reflect"), k, stride=1)
    torch.testing.assert_close(box_mean(x, radius), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("radius, eps", [(1, 1e-3), (8, 1e-3), (16, 1e-2)])
def test_guided_filter_matches_kornia(radius: int, eps: float) -> None:
    """Our running-sum filter is kornia's guided_blur (direct convolution), only faster."""
    from kornia.filters import guided_blur

    generator = torch.Generator().manual_seed(radius)
    guide = torch.rand(2, 1, 64, 48, generator=generator)
    src = torch.rand(2, 2, 64, 48, generator=generator) * 2 - 1
    expected = guided_blur(guide, src, 2 * radius + 1, eps)
    torch.testing.assert_close(guided_filter(guide, src, radius, eps), expected, atol=2e-4, rtol=0)


def test_a_window_larger_than_the_grid_is_one_clear_error() -> None:
    with pytest.raises(ChromalabError, match="window 41 px: larger than the 16x16 grid"):
        box_mean(torch.zeros(1, 1, 16, 16), 20)


@pytest.mark.parametrize("options, message", [
    ({"radius": 0.0}, "radius 0.0"), ({"radius": 0.7}, "radius 0.7"),
    ({"eps": 0.0}, "eps 0.0"), ({"scale": 0}, "scale 0"),
])
def test_bad_settings_are_one_clear_error(options: dict[str, float], message: str) -> None:
    with pytest.raises(ChromalabError, match=message):
        ChromaSmoothing(**options)


def lightness(image: Image.Image) -> np.ndarray:
    return skcolor.rgb2lab(np.asarray(image.convert("RGB")) / 255.0)[..., 0]


def test_export_stores_smoothing_and_colorize_uses_it(tiny_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    smooth = tmp_path / "smooth.safetensors"
    assert main(["export", "--model", str(tiny_model), "--format", "safetensors",
                 "--smoothing", "0.0625,0.001", "--out", str(smooth)]) == 0
    plain, smoothed = load_model(tiny_model), load_model(smooth)
    assert plain.smoothing is None
    assert smoothed.smoothing == ChromaSmoothing(radius=0.0625, eps=0.001)
    photo = synthetic_photo(3, width=90, height=70).convert("L")
    a, b = plain.colorize(photo), smoothed.colorize(photo)
    assert b.size == photo.size
    assert not np.array_equal(np.asarray(a), np.asarray(b))  # the setting is applied
    assert np.abs(lightness(b) - lightness(photo)).mean() < 0.5  # lightness is the photo's own
    # ... and removed again with "off"; a bad value is one line and writes nothing.
    plain_again = tmp_path / "plain.safetensors"
    assert main(["export", "--model", str(smooth), "--format", "safetensors", "--smoothing", "off",
                 "--out", str(plain_again)]) == 0
    assert load_model(plain_again).smoothing is None
    capsys.readouterr()
    assert main(["export", "--model", str(tiny_model), "--format", "safetensors", "--smoothing", "wide",
                 "--out", str(tmp_path / "bad.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "--smoothing 'wide'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.safetensors").exists()
    assert main(["export", "--model", str(tiny_model), "--smoothing", "0.03,0.001",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_colorize_flag_overrides_the_models_smoothing(tiny_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    synthetic_photo(4, width=80, height=60).convert("L").save(photo)
    outputs = {}
    for setting in ("off", "0.0625,0.001"):
        out = tmp_path / setting.replace(",", "_")
        assert main(["colorize", str(photo), "--model", str(tiny_model), "--out", str(out),
                     "--smoothing", setting]) == 0
        outputs[setting] = np.asarray(Image.open(out / "photo.png"))
    plain = np.asarray(load_model(tiny_model).colorize(Image.open(photo)))
    np.testing.assert_array_equal(outputs["off"], plain)  # the tiny model stores none
    assert not np.array_equal(outputs["0.0625,0.001"], plain)
    capsys.readouterr()
    assert main(["colorize", str(photo), "--model", str(tiny_model), "--out", str(tmp_path / "bad"),
                 "--smoothing", "0.9,0.001"]) == 2
    err = capsys.readouterr().err
    assert "radius 0.9" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
