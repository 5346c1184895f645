"""chromalab study: a tiny study end to end (table, sheet, curve), re-runs that skip and resume,
a broken entry, bad study files, and every study file in configs/studies/.

Entries are unet-tiny at 32 px trained on 16 images (4 steps of 4); the evaluation uses the 12
photos of the ``photo_dir`` fixture. The one FID per entry is the table's; the curve plots PSNR
(``curve.metric``), since a FID costs seconds on a busy CPU.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.evaluation import evaluate
from chromalab.inference.colorizer import Colorizer
from chromalab.study import load_study
from chromalab.study.callbacks import read_clock
from chromalab.study.spec import max_time, spread
from chromalab.training.config import TrainConfig
from tests.conftest import train_then_sigterm

STUDIES = sorted((Path(__file__).parent.parent / "configs" / "studies").glob("*.yaml"))
TINY_YAML = """\
model: {name: unet-tiny}
data: {batch_size: 4, workers: 0, val_fraction: 0.2}
trainer: {epochs: 1, accelerator: cpu, devices: 1, samples: 2, log_every: 1}
optim: {warmup_steps: 1}
"""


def study_file(folder: Path, photos: Path, **changes: object) -> Path:
    """A tiny study: l1 (unet-tiny, L1), broken (fails when training starts), gan (pixel GAN)."""
    (folder / "tiny.yaml").write_text(TINY_YAML)
    values: dict = {
        "name": "tiny",
        "data": str(photos),
        "eval": {"data": str(photos), "limit": 8, "metrics": ["fid", "psnr", "colorfulness", "colorfulness_truth",
                                                             "delta_colorfulness", "ciede2000"]},
        "size": 32,
        "seed": 0,
        "budget": {"images": 16},
        "curve": {"every_steps": 2, "photos": 4, "metric": "psnr"},
        "entries": [
            {"name": "l1", "config": "tiny.yaml"},
            # Valid for the study file (model.kwargs is free-form); the constructor refuses it.
            {"name": "broken", "config": "tiny.yaml", "set": {"model.kwargs.no_such_option": 1}},
            # One pre-training epoch (2 batches of 1 step), then 2 steps per batch: only the
            # image budget, not max_steps (8), can stop it after 16 images.
            {"name": "gan", "config": "tiny.yaml", "set": {"gan.discriminator": "pixel", "gan.pretrain_epochs": 1}},
        ],
    }
    values.update(changes)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def run_study(path: Path, out: Path, *options: str) -> int:
    return main(["study", str(path), "--out", str(out), "--no-progress", *options])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def global_step(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"])


@pytest.fixture(scope="module")
def finished(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, str]:
    """The tiny study run once: (study file, study folder, exit code, printed output)."""
    folder = tmp_path_factory.mktemp("study")
    path = study_file(folder, photo_dir)
    out = folder / "out"
    code = run_study(path, out)  # (a module fixture has no capsys: study.log has the lines)
    return path, out, code, (out / "study.log").read_text()


# --- one run ---------------------------------------------------------------------------------
def test_table_has_a_row_per_entry_and_the_broken_one_is_reported(finished, photo_dir: Path) -> None:
    path, out, code, log = finished
    assert code == 1  # an entry failed; the others finished
    rows = read_csv(out / "results.csv")
    assert [r["entry"] for r in rows] == ["l1", "broken", "gan"]
    assert [r["status"] for r in rows] == ["finished", "failed", "finished"]
    assert "no_such_option" in rows[1]["note"] and rows[1]["fid"] == "" and rows[1]["psnr"] == ""
    assert "entry 2/3 broken: FAILED" in log and "entry 3/3 gan: finished" in log  # the next one went on

    # The numbers are compare's: the same evaluation of the run's model, done here directly.
    photos = spread(sorted(p for p in photo_dir.rglob("*") if p.is_file()), 8)
    reference = evaluate(Colorizer.load(out / "runs" / "l1"), [str(p) for p in photos], size=32,
                         metrics=["psnr", "ciede2000"], progress=False)
    assert float(rows[0]["psnr"]) == pytest.approx(reference.summary["psnr"], rel=1e-4)
    assert float(rows[0]["ciede2000"]) == pytest.approx(reference.summary["ciede2000"], rel=1e-4)
    for row in (rows[0], rows[2]):
        assert float(row["fid"]) > 0 and float(row["colorfulness_truth"]) > 0
        assert float(row["delta_colorfulness"]) == pytest.approx(
            float(row["colorfulness"]) - float(row["colorfulness_truth"]), abs=1e-3)
        assert float(row["parameters"]) == pytest.approx(0.197394, rel=1e-3)  # unet-tiny, in millions
        assert float(row["train_images_per_s"]) > 0 and float(row["images_per_s"]) > 0
        assert float(row["train_minutes"]) > 0

    # Each column's best is bold in Markdown and named in the CSV's best column.
    markdown = (out / "results.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in table[1:]] == ["| l1", "| broken", "| gan"]
    psnr_best = 0 if float(rows[0]["psnr"]) > float(rows[2]["psnr"]) else 2
    assert "psnr" in rows[psnr_best]["best"].split(";") and "psnr" not in rows[2 - psnr_best]["best"]
    assert f"**{float(rows[psnr_best]['psnr']):.2f}**" in table[1 + psnr_best]
    assert "failed: " in table[2] and "no_such_option" in table[2]


def test_budget_images_stop_every_entry_at_the_same_number_of_photos(finished) -> None:
    _, out, _, _ = finished
    assert global_step(out / "runs" / "l1" / "checkpoints" / "last.ckpt") == 4  # 4 batches of 4
    # 2 pre-training batches (1 step each) + 2 adversarial batches (D and G: 2 steps each).
    assert global_step(out / "runs" / "gan" / "checkpoints" / "last.ckpt") == 6
    config = TrainConfig.from_yaml(out / "runs" / "gan" / "config.yaml")
    assert (config.trainer.max_steps, config.data.size, config.trainer.max_time) == (8, 32, None)


def test_sheet_and_curve(finished) -> None:
    _, out, _, _ = finished
    with Image.open(out / "grid.png") as grid:
        assert grid.format == "PNG" and grid.width > 4 * 32  # gray | l1 | gan | truth
    points = read_csv(out / "curve.csv")
    for entry, steps in (("l1", ["2", "4"]), ("gan", ["2", "4", "6"])):
        mine = [p for p in points if p["entry"] == entry]
        assert [p["step"] for p in mine] == steps and {p["metric"] for p in mine} == {"psnr"}
        minutes = [float(p["minutes"]) for p in mine]
        assert minutes == sorted(minutes) and minutes[0] > 0
        clock = dict(read_clock(out / "runs" / entry))
        assert minutes[-1] == pytest.approx(clock[int(steps[-1])] / 60, abs=1e-3)
        assert all(float(p["value"]) > 0 for p in mine)
    assert not [p for p in points if p["entry"] == "broken"]
    with Image.open(out / "psnr_vs_time.png") as plot:
        assert plot.format == "PNG" and plot.width > 300
    record = json.loads((out / "study.json").read_text())
    assert {"results.md", "results.csv", "grid.png", "curve.csv", "psnr_vs_time.png"} <= set(record["written"])


# --- running it again -------------------------------------------------------------------------
def test_second_run_skips_finished_entries_and_reuses_the_scores(finished, tmp_path: Path) -> None:
    path, original, _, _ = finished
    out = tmp_path / "out"
    shutil.copytree(original, out)
    models = {name: (out / "runs" / name / "model.safetensors").stat().st_mtime_ns for name in ("l1", "gan")}
    table = (out / "results.csv").read_text()
    assert run_study(path, out) == 1  # the broken entry is tried again, and fails again
    log = (out / "study.log").read_text().split("study tiny: 3 entries")[-1]
    assert "entry 1/3 l1: finished earlier, skipped" in log and "entry 3/3 gan: finished earlier, skipped" in log
    assert "entry 2/3 broken: FAILED" in log and "no entry changed since the last one" in log
    assert {name: (out / "runs" / name / "model.safetensors").stat().st_mtime_ns for name in models} == models
    assert (out / "results.csv").read_text() == table  # its own table, rewritten the same


def test_an_interrupted_entry_resumes_from_its_last_checkpoint(finished, photo_dir: Path, tmp_path: Path) -> None:
    from chromalab.study.callbacks import TrainingClock
    from chromalab.training.trainer import train

    path, original, _, _ = finished
    out = tmp_path / "out"
    shutil.copytree(original, out)
    run = out / "runs" / "l1"
    # Half of l1's budget: a run stopped after 2 of its 4 steps, with no model yet.
    shutil.rmtree(run)
    config = load_study(path, out=out, progress=False).entries[0].config
    config.trainer.max_steps = 2
    train(config, callbacks=[TrainingClock(run)])
    (run / "model.safetensors").unlink()
    config.trainer.max_steps = 4
    (run / "config.yaml").write_text(config.to_yaml())  # as the study wrote it
    assert global_step(run / "checkpoints" / "last.ckpt") == 2

    run_study(path, out)
    log = (out / "study.log").read_text().split("study tiny: 3 entries")[-1]
    assert "entry 1/3 l1: resuming from" in log and "no entry changed" not in log
    assert global_step(run / "checkpoints" / "last.ckpt") == 4 and (run / "model.safetensors").is_file()
    clock = read_clock(run)
    assert [step for step, _ in clock] == [0, 1, 2, 3, 4]  # the first part's rows are kept
    assert all(a < b for (_, a), (_, b) in zip(clock, clock[1:]))


@pytest.mark.parametrize("worker_error", [False, True], ids=["sigterm", "sigterm-and-dead-worker"])
def test_sigterm_stops_the_study_and_the_same_command_continues(
    worker_error: bool, photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chromalab.training import trainer

    path = study_file(tmp_path, photo_dir, entries=[{"name": "l1", "config": "tiny.yaml"},
                                                    {"name": "second", "config": "tiny.yaml"}])
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as patch:
        patch.setattr(trainer, "train", train_then_sigterm(trainer.train, worker_error))
        assert run_study(path, out) == 130
    assert signal.getsignal(signal.SIGTERM) == before  # the study's handler is gone again
    record = json.loads((out / "study.json").read_text())
    assert record["entries"]["l1"]["status"] == "interrupted"  # not "failed": nothing is broken
    assert "second" not in record["entries"]  # a stop request starts no more training
    log = (out / "study.log").read_text()
    assert "entry 1/2 l1: interrupted" in log and "FAILED" not in log

    assert run_study(path, out) == 0  # the same command continues
    log = (out / "study.log").read_text().split("study tiny: 2 entries")[-1]
    # Stopped before its first checkpoint, l1 trains again from the start (resuming from a
    # checkpoint is the test above); then the entry the stop kept from starting runs.
    assert "entry 1/2 l1: finished in" in log and "entry 2/2 second: finished in" in log
    assert global_step(out / "runs" / "l1" / "checkpoints" / "last.ckpt") == 4


# --- refusing ------------------------------------------------------------------------------------
BAD_STUDIES = [
    ({"budgett": {"minutes": 1}}, "budgett: unknown key (known: name, data, eval"),
    ({"entries": [{"name": "a", "config": "tiny.yaml", "sett": {}}]}, "entry 'a' (entries[0].sett): unknown key"),
    ({"entries": [{"name": "a", "config": "missing.yaml"}]}, "entry 'a': config missing.yaml: no such file"),
    ({"entries": [{"name": "a", "config": "tiny.yaml", "set": {"gan.l1_wieght": 10}}]},
     "entry 'a': unknown option 'gan.l1_wieght'"),
    ({"entries": [{"name": "a", "config": "tiny.yaml", "set": {"gan.l1_weight": "heavy"}}]},
     "option gan.l1_weight='heavy': expected a valid number"),
    ({"entries": [{"name": "a", "config": "tiny.yaml", "set": {"trainer.max_time": "00:01:00:00"}}]},
     "'trainer.max_time' is set by the study"),
    ({"entries": [{"name": "a", "config": "tiny.yaml", "set": {"model.name": "no-such-model"}}]},
     "unknown model 'no-such-model'"),
    ({"entries": [{"name": "a", "config": "tiny.yaml"}, {"name": "a", "config": "tiny.yaml"}]}, "used twice"),
    ({"entries": [{"name": "../a", "config": "tiny.yaml"}]}, "(entries[0].name): String should match pattern"),
    ({"entries": []}, "entries: List should have at least 1 item"),
    ({"data": "/no/such/folder"}, "data /no/such/folder: no such folder"),
    ({"eval": {"data": "/no/such/photos"}}, "eval.data /no/such/photos: no such folder"),
    ({"budget": {}}, "budget: give minutes, images or both"),
    ({"size": "large"}, "size: Input should be a valid integer"),
    ({"curve": {"metric": "sharpness"}}, "curve.metric: unknown metric(s) sharpness"),
]


@pytest.mark.parametrize(("changes", "fragment"), BAD_STUDIES, ids=[f[1][:30] for f in BAD_STUDIES])
def test_bad_study_files_give_one_line_before_any_training(
    changes: dict, fragment: str, photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run_study(study_file(tmp_path, photo_dir, **changes), out)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("chromalab study: error:") and fragment in err, err
    assert not out.exists()


def test_files_the_study_did_not_write_are_never_replaced(
    finished, photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, original, _, _ = finished
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.md").write_text("my notes")
    assert run_study(path, foreign) == 2
    assert "already holds results.md, not written by this study" in capsys.readouterr().err
    assert (foreign / "results.md").read_text() == "my notes" and not (foreign / "runs").exists()

    (foreign / "results.md").unlink()
    (foreign / "runs" / "l1").mkdir(parents=True)
    (foreign / "runs" / "l1" / "keep.txt").write_text("someone's run")
    assert run_study(path, foreign) == 2
    assert "exists and was not made by this study" in capsys.readouterr().err
    assert (foreign / "runs" / "l1" / "keep.txt").is_file()

    # A finished entry whose options changed since is not silently kept (nor retrained).
    out = tmp_path / "changed"
    shutil.copytree(original, out)
    changed = study_file(tmp_path, photo_dir, size=48)
    assert run_study(changed, out) == 2
    err = capsys.readouterr().err
    assert "entry 'l1': its run" in err and "data.size: 32 -> 48" in err and len(err.strip().splitlines()) == 1


def test_study_file_helpers() -> None:
    assert max_time(7) == "00:00:07:00" and max_time(90.5) == "00:01:30:30" and max_time(60 * 25) == "01:01:00:00"
    paths = [Path(f"{i:03d}") for i in range(100)]
    assert spread(paths, 5) == [Path("000"), Path("025"), Path("050"), Path("074"), Path("099")]
    assert spread(paths, None) == paths and spread(paths[:3], 8) == paths[:3]


# --- the study files of the project -----------------------------------------------------------
def test_the_four_studies_exist() -> None:
    assert {p.stem for p in STUDIES} >= {"families", "discriminator-color-space", "gan-losses", "l1-weight"}


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_study_file_validates(path: Path, photo_dir: Path, tmp_path: Path) -> None:
    """Loads, its configs exist, its options are valid (with the corpus swapped for tiny photos)."""
    study = load_study(path, out=tmp_path / "out", data=str(photo_dir), eval_data=str(photo_dir), progress=False)
    assert len(study.entries) >= 3 and study.spec.budget.minutes  # a comparison, not a single run
    # Equal for every entry: size, seed, budget; each in its own run folder.
    assert {(e.config.data.size, e.config.seed, e.config.trainer.max_time) for e in study.entries} == {
        (study.spec.size, study.spec.seed, max_time(study.spec.budget.minutes))}
    assert len({e.config.out for e in study.entries}) == len(study.entries)
    for entry in study.entries:
        assert entry.config_path.resolve().parent == path.parent.parent.resolve()  # a config of configs/
    # Training fits in about 2 hours with time left for the evaluation.
    assert study.spec.budget.minutes * len(study.entries) <= 105


def test_study_check_prints_the_plan_and_trains_nothing(
    photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = STUDIES[0]
    out = tmp_path / "out"
    assert main(["study", str(path), "--check", "--data", str(photo_dir), "--eval-data", str(photo_dir),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    study = load_study(path, out=out, data=str(photo_dir), eval_data=str(photo_dir))
    assert all(f". {entry.name}: " in printed for entry in study.entries)
    assert not out.exists()


def test_load_study_errors_are_chromalab_errors(photo_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("entries: [")
    with pytest.raises(ChromalabError, match="invalid YAML"):
        load_study(tmp_path / "bad.yaml")
    # A misspelt key is named, not the key it leaves missing.
    path = study_file(tmp_path, photo_dir)
    path.write_text(path.read_text().replace("budget:", "budgt:"))
    with pytest.raises(ChromalabError, match=r"budgt: unknown key \(known: .*budget"):
        load_study(path)
