"""scripts/temperature_sweep.py: one report row per (saturation, smoothing, network size), and
bad option values refused before any evaluation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from chromalab.errors import ChromalabError
from tests.conftest import load_script


@pytest.fixture(scope="module")
def sweep_script():
    return load_script("temperature_sweep")


def run_sweep(module, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["temperature_sweep.py", *args])
    return module.main()


def test_rows_for_every_saturation_and_network_size(sweep_script, tiny_model: Path, photo_dir: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sweep"
    status = run_sweep(sweep_script, monkeypatch, str(tiny_model), "--data", str(photo_dir), "--size", "48",
                       "--saturations", "1,2", "--model-sizes", "16,32", "--metrics", "colorfulness,psnr",
                       "--out", str(out))
    assert status == 0
    rows = {m["name"]: m["summary"] for m in json.loads((out / "metrics.json").read_text())["models"]}
    assert set(rows) == {"S=1 @16", "S=2 @16", "S=1 @32", "S=2 @32", "gray"}
    # Saturation 2 doubles the chroma, so the colorfulness rises; a different network size
    # gives different colors (the tiny model's output depends on its input's scale).
    assert rows["S=2 @32"]["colorfulness"] > rows["S=1 @32"]["colorfulness"] > 0
    assert rows["S=1 @16"]["colorfulness"] != rows["S=1 @32"]["colorfulness"]


@pytest.mark.parametrize("bad", ["12", "128,abc", "100"])
def test_bad_model_sizes_are_one_line_before_any_work(sweep_script, bad: str) -> None:
    with pytest.raises(ChromalabError, match="--model-sizes"):
        sweep_script.parse_model_sizes(bad)


def test_model_sizes_parse(sweep_script) -> None:
    assert sweep_script.parse_model_sizes(None) == [None]
    assert sweep_script.parse_model_sizes("128,192,128") == [128, 192]
    assert sweep_script.setting_name(1.5, None, 192) == "S=1.5 @192"
