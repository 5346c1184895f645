"""`train --resume RUN` continues that run's own recipe; flags that would change it are refused."""

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
import yaml

from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.training.config import TrainConfig
from chromalab.training.resume import recipe_changes
from chromalab.training.trainer import train
from tests.conftest import synthetic_photo
from tests.test_training import tiny_config

RECIPE = ["--model", "unet-tiny", "--size", "32", "--batch-size", "8", "--val-fraction", "0.2",
          "--workers", "0", "--accelerator", "cpu", "--devices", "1", "--warmup-steps", "1", "--no-progress"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 small photos: about 32 for training, so batch 8 and batch 32 differ in steps per epoch."""
    root = tmp_path_factory.mktemp("resume-photos")
    for index in range(40):
        synthetic_photo(100 + index, 36, 36).save(root / f"p{index:02d}.png")
    return root


def train_cli(*args: str) -> int:
    return main(["train", *args])


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def saved_epoch(checkpoint: Path) -> int:
    """The epoch of a checkpoint another process is writing; -1 until it can be read whole."""
    try:
        return torch.load(checkpoint, weights_only=False)["epoch"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def logged_epochs(run: Path) -> list[int]:
    with (run / "logs" / "metrics.csv").open() as handle:
        return sorted({int(row["epoch"]) for row in csv.DictReader(handle) if row.get("val/loss")})


@pytest.mark.slow
def test_sigkill_then_resume_with_no_other_flag_continues_the_runs_recipe(photos: Path, tmp_path: Path) -> None:
    run = tmp_path / "k9"
    command = [sys.executable, "-m", "chromalab", "train", "--data", str(photos), *RECIPE,
               "--epochs", "6", "--out", str(run)]
    env = dict(os.environ)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    try:
        # Kill without warning (no handler runs) once two epochs are saved and the third is under way.
        while time.monotonic() < deadline and process.poll() is None:
            if saved_epoch(last) >= 1:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run wrote no second checkpoint")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed = torch.load(last, weights_only=False)
    steps_per_epoch = killed["global_step"] // (killed["epoch"] + 1)
    assert steps_per_epoch >= 3  # batch 8 on ~32 photos; the default batch (32) would give 1

    # The README's command, as a user types it after the crash: nothing but the run.
    done = subprocess.run([sys.executable, "-m", "chromalab", "train", "--resume", str(run)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    final = torch.load(last, weights_only=False)
    assert final["epoch"] == 5  # the run's own 6 epochs, not the default 10
    # From the checkpoint and at the run's batch size: only the missing epochs, as many steps each.
    assert final["global_step"] == killed["global_step"] + (5 - killed["epoch"]) * steps_per_epoch
    assert logged_epochs(run) == list(range(6))  # the killed part's log is kept and continued
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["data"]["batch_size"], config["data"]["size"], config["trainer"]["epochs"]) == (8, 32, 6)
    from chromalab.checkpoint import load_network

    net, spec = load_network(str(run / "model.safetensors"))
    assert spec.name == "unet-tiny" and sum(p.numel() for p in net.parameters()) > 0
    assert not (tmp_path / "k9-2").exists()


@pytest.fixture(scope="module")
def finished_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "short"
    assert train_cli("--data", str(photos), *RECIPE, "--epochs", "1", "--out", str(run)) == 0
    return run


def test_resume_with_more_epochs_extends_the_run(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "extended"
    shutil.copytree(finished_run, run)
    assert train_cli("--resume", str(run), "--epochs", "2", "--workers", "0", "--no-progress") == 0
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["epoch"] == 1
    assert logged_epochs(run) == [0, 1]
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["epochs"] == 2


@pytest.mark.parametrize(("flags", "named"), [
    (["--batch-size", "4"], "--batch-size 4: .* was trained with data.batch_size=8"),
    (["--lr", "0.01"], "--lr 0.01: .* optim.lr="),
    (["--model", "unet"], "--model unet: .* model.name=unet-tiny"),
    (["--set", "model.kwargs.width=8"], "--set model.kwargs.width 8: .* model.kwargs.width=none"),
    (["--epochs", "0"], None),  # argparse-valid but a config error: still one line
    (["--max-steps", "1"], "--max-steps 1: .* can be extended, not shortened"),
    (["--data", "/elsewhere"], "--data /elsewhere: .* data.path="),
])
def test_a_flag_that_changes_the_recipe_is_one_line_and_writes_nothing(
    finished_run: Path, flags: list[str], named: str | None, capsys: pytest.CaptureFixture[str],
) -> None:
    before = folder_state(finished_run)
    assert train_cli("--resume", str(finished_run), *flags) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("chromalab train: error: ")
    if named:
        import re

        assert re.search(named, error), error
        assert "--init-from" in error or "shortened" in error
    assert folder_state(finished_run) == before


def test_flags_that_keep_the_recipe_are_taken(finished_run: Path) -> None:
    from argparse import Namespace

    from chromalab.cli.train import FLAGS, resume_config

    args = Namespace(**{flag: None for flag in FLAGS}, config=None, attention=None, cache=True, mood_augment=None,
                     no_progress=True, set=["trainer.log_every=3"], resume=str(finished_run))
    args.workers, args.epochs, args.max_time = 1, 4, "00:00:10:00"
    config, checkpoint = resume_config(args)
    assert checkpoint == finished_run / "checkpoints" / "last.ckpt"
    assert (config.data.workers, config.data.cache, config.trainer.epochs, config.trainer.max_time,
            config.trainer.progress, config.trainer.log_every) == (1, True, 4, "00:00:10:00", False, 3)
    assert (config.data.batch_size, config.data.size, config.model.name) == (8, 32, "unet-tiny")
    trained = yaml.safe_load((finished_run / "config.yaml").read_text())
    args.data = trained["data"]["path"] + os.sep  # the run's own data, written another way
    assert resume_config(args)[0].data.path == trained["data"]["path"]


@pytest.mark.parametrize("missing", ["config.yaml", "checkpoints/last.ckpt"])
def test_a_run_folder_without_its_config_or_checkpoint_is_one_line(
    finished_run: Path, tmp_path: Path, missing: str, capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    run = tmp_path / "broken"
    shutil.copytree(finished_run, run)
    (run / missing).unlink()
    before = folder_state(run)
    assert train_cli("--resume", str(run)) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert ("no config.yaml" in error) if missing == "config.yaml" else ("no checkpoint to resume from" in error)
    assert folder_state(run) == before


def test_resume_refuses_another_config_or_folder_and_names_what_is_missing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("model:\n  name: unet\n")
    cases = {
        ("--resume", str(finished_run), "--config", str(other)): "follows its own",
        ("--resume", str(finished_run), "--out", str(tmp_path / "new")): "continues in its own folder",
        ("--resume", str(tmp_path / "nowhere")): "no such run folder",
        ("--resume", str(tmp_path / "nowhere.ckpt")): "no such checkpoint",
        ("--resume",): "--resume needs the run",
    }
    for args, expected in cases.items():
        assert train_cli(*args) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and expected in error, (args, error)
    assert not (tmp_path / "new").exists()


def test_resume_from_another_folder_says_where_the_data_is_read_from(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    run = tmp_path / "moved"
    shutil.copytree(finished_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["path"] = "photos-relative"  # as if started with --data photos-relative elsewhere
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    assert train_cli("--resume", str(run)) == 2
    error = capsys.readouterr().err.strip()
    assert "its data photos-relative is not here" in error and len(error.splitlines()) == 1


def test_bare_resume_with_out_names_the_run(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "again"
    shutil.copytree(finished_run, run)
    assert train_cli("--resume", "--out", str(run), "--epochs", "2", "--workers", "0", "--no-progress") == 0
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["epoch"] == 1


def test_the_library_and_studies_go_through_the_same_rule(photo_dir: Path, tmp_path: Path) -> None:
    run = train(tiny_config(photo_dir, tmp_path / "run"))
    # train(config, resume=...) with another recipe (what a study entry whose YAML was edited asks).
    with pytest.raises(ChromalabError, match="data.batch_size=4; a resumed run keeps its recipe"):
        train(tiny_config(photo_dir, tmp_path / "run", data={"batch_size": 2}), resume=str(run))
    # The Python API's resume reads the run's own recipe; overrides may extend it.
    import chromalab

    assert chromalab.train(resume=str(run), **{"trainer.epochs": 2}) == run
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["epoch"] == 1


def test_recipe_changes_sees_every_option_but_the_free_ones() -> None:
    trained = TrainConfig()
    requested = TrainConfig()
    for path, value in [("data.workers", 3), ("trainer.progress", False), ("trainer.epochs", 20),
                        ("trainer.max_time", "00:01:00:00"), ("out", "elsewhere")]:
        requested.set(path, value)
    assert recipe_changes(trained, requested) == []
    for path, value in [("gan.l1_weight", 10.0), ("trainer.precision", "32-true"), ("seed", 3),
                        ("trainer.devices", 2), ("data.min_crop_scale", 0.9), ("model.kwargs.depth", 3)]:
        changed = TrainConfig()
        changed.set(path, value)
        assert [c.path for c in recipe_changes(trained, changed)] == [path]
    unlimited = TrainConfig()
    unlimited.set("trainer.max_steps", 500)
    assert recipe_changes(unlimited, TrainConfig()) == []  # -1 (no limit) extends any limit
    assert recipe_changes(TrainConfig(), unlimited)[0].shortened


@pytest.mark.slow
def test_sigterm_stops_training_with_one_line_that_says_how_to_continue(photos: Path, tmp_path: Path) -> None:
    run = tmp_path / "stopped"
    command = [sys.executable, "-m", "chromalab", "train", "--data", str(photos), *RECIPE,
               "--workers", "1", "--epochs", "50", "--out", str(run)]
    # Its own process group, signalled whole: the DataLoader worker gets the SIGTERM too (pkill -f).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None and saved_epoch(run / "checkpoints/last.ckpt") < 0:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    last_line = stderr.strip().splitlines()[-1]
    assert last_line == f"chromalab train: interrupted; continue with: chromalab train --resume {run}"
    assert "Traceback" not in stderr and "internal error" not in stderr
