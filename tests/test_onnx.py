"""ONNX export and the onnxruntime backend agree with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.onnx_backend import OnnxBackend, export_onnx
from tests.conftest import synthetic_photo


def test_export_and_backends_agree(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--model", str(tiny_model), "--format", "onnx", "--out", str(out)]) == 0
    assert "max |difference|" in capsys.readouterr().out
    torch_colorizer = Colorizer.load(tiny_model, backend="torch")
    backend = OnnxBackend(out)
    l_norm = torch.rand(3, 1, 64, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = torch_colorizer.net.predict(l_norm)
    assert (backend(l_norm) - expected).abs().max() < 1e-2  # any batch size, non-square sizes
    onnx_colorizer = Colorizer(torch_colorizer.net, torch_colorizer.spec, backend=backend)
    photo = synthetic_photo(3)
    a = np.asarray(torch_colorizer.colorize(photo, size=64), int)
    b = np.asarray(onnx_colorizer.colorize(photo, size=64), int)
    assert np.abs(a - b).max() <= 1


def test_export_never_replaces_a_file_unasked_nor_its_own_input(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "keep.onnx"
    existing.write_bytes(b"user data")
    assert main(["export", "--model", str(tiny_model), "--format", "onnx", "--out", str(existing)]) != 0
    assert "exists (use --overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"user data"
    source = tiny_model / "model.safetensors"
    before = source.read_bytes()
    assert main(["export", "--model", str(source), "--format", "safetensors", "--half",
                 "--out", str(source), "--overwrite"]) != 0
    assert "refusing to overwrite the model" in capsys.readouterr().err
    assert source.read_bytes() == before
    assert main(["export", "--model", str(tiny_model), "--format", "onnx", "--out", str(existing), "--overwrite"]) == 0
    assert existing.read_bytes() != b"user data"


def test_shipped_model_has_a_matching_onnx_export() -> None:
    torch_colorizer = Colorizer.load("default", backend="torch")
    onnx_colorizer = Colorizer.load("default", backend="auto")
    assert onnx_colorizer.backend_name == "onnx"  # the shipped export makes auto pick onnxruntime
    l_norm = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert (onnx_colorizer.predict_ab(l_norm) - torch_colorizer.predict_ab(l_norm)).abs().max() < 1e-2


def test_sampling_models_refuse_onnx_export() -> None:
    from chromalab.models import create_model

    net = create_model("vae", out_channels=2)
    with pytest.raises(ChromalabError, match="cannot be exported"):
        export_onnx(net, Path("/nonexistent/x.onnx"))


@pytest.mark.parametrize("name, kwargs", [
    ("classify", {"widths": [8, 16, 32], "norm": "group"}),
    ("effclassify", {"pretrained": False, "decoder_widths": [16, 16, 8], "head_width": 16, "norm": "group"}),
])
def test_classifiers_export_with_their_annealed_mean_decoding(name: str, kwargs: dict, tmp_path: Path) -> None:
    from chromalab.models import create_model

    torch.manual_seed(0)
    net = create_model(name, **kwargs).eval()
    with torch.no_grad():  # larger logits than at initialization, so the decoding matters
        net.head[-1].weight.mul_(20.0)
    backend = OnnxBackend(export_onnx(net, tmp_path / f"{name}.onnx", size=64))
    l_norm = torch.rand(2, 1, 64, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = net.predict(l_norm)
    assert expected.abs().max() > 0.05  # real colors, not a degenerate all-gray comparison
    assert (backend(l_norm) - expected).abs().max() < 1e-2

    # The graph holds T = 0.38; another temperature is honoured by running the network.
    from chromalab.checkpoint import ModelSpec

    colorizer = Colorizer(net, ModelSpec(name, kwargs), backend=backend)
    colorizer.backend_name = "onnx"
    mean = colorizer.predict_ab(l_norm, temperature=1.0)
    torch.testing.assert_close(mean, net.predict(l_norm, temperature=1.0))
    assert (mean - colorizer.predict_ab(l_norm)).abs().max() > 1e-2


def test_export_stores_a_classifiers_temperature(tmp_path: Path, tiny_model: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from chromalab.checkpoint import ModelSpec, load_network, save_network
    from chromalab.models import create_model

    torch.manual_seed(0)
    kwargs = {"widths": [8, 16, 32], "norm": "group", "temperature": 0.38}
    net = create_model("classify", **kwargs).eval()
    with torch.no_grad():
        net.head[-1].weight.mul_(20.0)
    source = save_network(net, ModelSpec("classify", kwargs, size=32), tmp_path / "c.safetensors")
    for fmt in ("safetensors", "onnx"):
        out = tmp_path / f"warm.{fmt}"
        assert main(["export", "--model", str(source), "--format", fmt, "--temperature", "1",
                     "--out", str(out)]) == 0
    loaded, spec = load_network(tmp_path / "warm.safetensors")
    assert spec.kwargs["temperature"] == 1.0 and loaded.temperature == 1.0
    l_norm = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    expected = net.predict(l_norm, temperature=1.0)
    torch.testing.assert_close(loaded.predict(l_norm), expected)
    assert (OnnxBackend(tmp_path / "warm.onnx")(l_norm) - expected).abs().max() < 1e-2
    assert (expected - net.predict(l_norm)).abs().max() > 1e-2  # T really changed the colors

    capsys.readouterr()
    assert main(["export", "--model", str(tiny_model), "--format", "safetensors", "--temperature", "1",
                 "--out", str(tmp_path / "x.safetensors")]) != 0
    assert "--temperature is for classification models" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
