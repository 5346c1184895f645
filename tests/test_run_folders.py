"""Run folders: a run never writes into another run's folder; resuming needs the run named;
a run killed mid-training continues from its last checkpoint."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
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


KILLABLE_RUN = """
import sys
from pathlib import Path
from chromalab.training.trainer import train
from tests.test_training import tiny_config
config = tiny_config(Path(sys.argv[1]), Path(sys.argv[2]), trainer={"epochs": int(sys.argv[3]), "log_every": 1})
train(config, resume=sys.argv[4] if len(sys.argv) > 4 else None)
"""


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_continues_from_the_last_checkpoint(photo_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", KILLABLE_RUN, str(photo_dir), str(run), "400"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    try:
        # Wait for a few epochs' checkpoints, then kill without warning (no handler can run).
        while time.monotonic() < deadline:
            if last.is_file() and torch.load(last, weights_only=False)["epoch"] >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run wrote no checkpoint in 2 minutes")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed = torch.load(last, weights_only=False)
    assert killed["global_step"] > 0
    logged_before = (run / "logs" / "metrics.csv").read_text()
    target_epochs = killed["epoch"] + 3
    done = subprocess.run([sys.executable, "-c", KILLABLE_RUN, str(photo_dir), str(run), str(target_epochs), str(run)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    final = torch.load(last, weights_only=False)
    steps_per_epoch = killed["global_step"] // (killed["epoch"] + 1)
    # From the checkpoint, not from the start: only the missing epochs were trained.
    assert final["epoch"] == target_epochs - 1
    assert final["global_step"] == killed["global_step"] + (final["epoch"] - killed["epoch"]) * steps_per_epoch
    with (run / "logs" / "metrics.csv").open() as handle:
        epochs = sorted({int(row["epoch"]) for row in csv.DictReader(handle) if row.get("val/loss")})
    assert epochs[0] == 0 and epochs[-1] == final["epoch"]  # the log of the killed part is kept
    assert len(logged_before) > 0 and not (run.parent / "run-2").exists()
