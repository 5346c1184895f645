"""Inference in fp32, bf16 and int8: each agrees with fp32 within its tolerance, and auto
picks a faster precision only where the model file records it and it can run here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chromalab.checkpoint import load_network, save_network
from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.inference import precision as inference_precision
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.precision import int8_onnx_path
from tests.conftest import synthetic_photo

pytest.importorskip("onnxruntime")


def l_batch(size: int = 64) -> torch.Tensor:
    return torch.rand(3, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture(scope="module")
def int8_model(tiny_model: Path, photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as a model file with its int8 graph beside it (model.int8.onnx)."""
    folder = tmp_path_factory.mktemp("int8")
    model_file = folder / "model.safetensors"
    shutil.copy(tiny_model / "model.safetensors", model_file)
    assert main(["export", "--model", str(model_file), "--format", "onnx", "--int8", "--calibration",
                 str(photo_dir), "--calibration-photos", "8", "--out", str(int8_onnx_path(model_file))]) == 0
    return model_file


def test_bf16_backend_is_close_to_fp32(tiny_model: Path) -> None:
    fp32 = Colorizer.load(tiny_model, backend="torch", precision="fp32")
    bf16 = Colorizer.load(tiny_model, backend="torch", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    expected, actual = fp32.predict_ab(l_batch()), bf16.predict_ab(l_batch())
    assert actual.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: differences of a few tenths of a percent of the ab range.
    assert (actual - expected).abs().mean() < 0.01
    assert not torch.equal(actual, expected)  # it really ran in bf16


def test_int8_export_is_quantized_and_close_to_fp32(int8_model: Path, tiny_model: Path) -> None:
    import onnx

    graph = onnx.load(str(int8_onnx_path(int8_model)))
    assert any(node.op_type == "QuantizeLinear" for node in graph.graph.node)
    fp32 = Colorizer.load(tiny_model, backend="torch", precision="fp32")
    int8 = Colorizer.load(int8_model, precision="int8")
    assert (int8.backend_name, int8.precision) == ("onnx", "int8")
    expected, actual = fp32.predict_ab(l_batch()), int8.predict_ab(l_batch())
    assert (actual - expected).abs().mean() < 0.05
    photo = synthetic_photo(5)
    a = np.asarray(fp32.colorize(photo, size=64), int)
    b = np.asarray(int8.colorize(photo, size=64), int)
    assert np.abs(a - b).mean() < 3.0  # 8-bit RGB levels


def test_int8_without_an_export_says_how_to_make_one(tiny_model: Path) -> None:
    with pytest.raises(ChromalabError, match="chromalab export .* --int8 --calibration"):
        Colorizer.load(tiny_model, precision="int8")


@pytest.mark.parametrize(("precision", "backend", "message"), [
    ("int4", "auto", "unknown precision"),
    ("bf16", "onnx", "bf16 runs on the PyTorch backend"),
    ("int8", "torch", "int8 runs on the onnx backend"),
])
def test_impossible_combinations_fail_with_one_line(tiny_model: Path, precision: str, backend: str, message: str) -> None:
    with pytest.raises(ChromalabError, match=message):
        Colorizer.load(tiny_model, backend=backend, precision=precision)


def record_auto(model_file: Path, choice: str, folder: Path) -> Path:
    net, spec = load_network(model_file)
    spec.extra["auto_precision"] = choice
    out = folder / "model.safetensors"
    save_network(net, spec, out)
    return out


def test_auto_follows_the_recorded_measurement(int8_model: Path, tmp_path: Path) -> None:
    assert Colorizer.load(int8_model).precision == "fp32"  # nothing recorded: the reference
    recorded = record_auto(int8_model, "int8", tmp_path)
    assert Colorizer.load(recorded).precision == "fp32"  # recorded, but no int8 graph beside it
    shutil.copy(int8_onnx_path(int8_model), int8_onnx_path(recorded))
    assert Colorizer.load(recorded).precision == "int8"
    assert Colorizer.load(recorded, backend="torch").precision == "fp32"  # int8 is onnx-only


@pytest.mark.parametrize("has_bf16_units", [True, False])
def test_auto_bf16_only_where_the_cpu_has_bf16_units(
    int8_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_bf16_units: bool
) -> None:
    recorded = record_auto(int8_model, "bf16", tmp_path)
    monkeypatch.setattr("chromalab.precision.cpu_has_bf16", lambda: has_bf16_units)
    assert Colorizer.load(recorded).precision == ("bf16" if has_bf16_units else "fp32")


def test_export_records_auto_precision(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    assert main(["export", "--model", str(tiny_model), "--format", "safetensors", "--auto-precision", "int8",
                 "--out", str(out)]) == 0
    assert load_network(out)[1].extra["auto_precision"] == "int8"


def test_int8_export_needs_calibration_photos(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", str(tiny_model), "--format", "onnx", "--int8", "--out", str(tmp_path / "q.onnx")]) != 0
    assert "--calibration" in capsys.readouterr().err
    assert not (tmp_path / "q.onnx").exists()


def test_colorize_cli_runs_in_each_precision(int8_model: Path, tmp_path: Path) -> None:
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    synthetic_photo(2).save(photo)
    outputs = {}
    for precision in ("fp32", "bf16", "int8"):
        out = tmp_path / precision
        assert main(["colorize", str(photo), "--model", str(int8_model), "--precision", precision, "--out", str(out)]) == 0
        outputs[precision] = np.asarray(Image.open(out / "photo.png"), int)
    assert np.abs(outputs["bf16"] - outputs["fp32"]).mean() < 3.0
    assert np.abs(outputs["int8"] - outputs["fp32"]).mean() < 3.0


def test_check_precision_lists_the_choices() -> None:
    assert inference_precision.check_precision("auto") == "auto"
    with pytest.raises(ChromalabError, match="auto, fp32, bf16, int8"):
        inference_precision.check_precision("fp16")
