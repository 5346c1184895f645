"""Run folders: a run never writes into another run's folder; resuming needs the run named;
a killed run resumes: tests/test_resume.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chromalab.errors import ChromalabError
from chromalab.training.trainer import train
from tests.test_training import tiny_config


def test_a_second_run_gets_its_own_folder(photo_dir: Path, tmp_path: Path) -> None:
    first = train(tiny_config(photo_dir, tmp_path / "run"))
    before = {name: (first / name).read_bytes() for name in ("model.safetensors", "config.yaml", "logs/metrics.csv")}
    second = train(tiny_config(photo_dir, tmp_path / "run", optim={"lr": 1e-2}))
    assert first == tmp_path / "run" and second == tmp_path / "run-2"
    assert {name: (first / name).read_bytes() for name in before} == before  # untouched
    assert not list((first / "checkpoints").glob("last-v*.ckpt"))
    assert (second / "model.safetensors").is_file()
    assert "lr: 0.01" in (second / "config.yaml").read_text()


def test_a_foreign_file_at_the_run_path_is_left_alone(photo_dir: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "run"
    foreign.write_text("not a folder, and not ours")
    run = train(tiny_config(photo_dir, foreign))
    assert run == tmp_path / "run-2" and foreign.read_text() == "not a folder, and not ours"


def test_without_out_each_run_is_named_by_model_and_time(photo_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tiny_config(photo_dir, tmp_path / "unused")
    config.out = None
    run = train(config)
    assert run.parent == Path("runs") and run.name.startswith("unet-tiny-")
    assert (run / "model.safetensors").is_file()


def test_resume_needs_the_run_and_continues_in_its_folder(photo_dir: Path, tmp_path: Path) -> None:
    run = train(tiny_config(photo_dir, tmp_path / "run"))
    config = tiny_config(photo_dir, tmp_path / "elsewhere", trainer={"epochs": 2})
    resumed = train(config, resume=str(run))  # a run folder names its last.ckpt
    assert resumed == run and not (tmp_path / "elsewhere").exists()
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["epoch"] == 1
    config.out = None
    with pytest.raises(ChromalabError, match="--resume last needs the run"):
        train(config, resume="last")


# A run killed with SIGKILL and resumed: tests/test_resume.py (through the command, as users do).
