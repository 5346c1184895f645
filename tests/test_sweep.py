"""Hyperparameter sweeps: parameter specs, grid sweep + report, resuming, pruning, bad input.

Every training here is one optimizer step of unet-tiny on 32 px photos (12 photos, batch 8).
"""

from __future__ import annotations

import csv
import math
import shutil
import types
from pathlib import Path

import optuna
import pytest
import torch
from PIL import Image

from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.sweep.pruning import ReportToPruner
from chromalab.sweep.report import write_report
from chromalab.sweep.spec import apply_params, parse_param, parse_params
from chromalab.training.config import TrainConfig
from tests.conftest import train_then_sigterm

LRS = ["0.0001", "0.001", "0.01"]
TINY_YAML = """\
model: {name: unet-tiny}
data: {size: 32, batch_size: 8, workers: 0, val_fraction: 0.2}
trainer: {epochs: 1, accelerator: cpu, devices: 1, samples: 2}
optim: {warmup_steps: 1}
"""


def tiny_config(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


def sweep(config: Path, data: Path, out: Path, *options: str) -> int:
    return main(["sweep", "--config", str(config), "--data", str(data), "--out", str(out),
                 "--no-progress", *options])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def checkpointed_best_val_loss(run_dir: Path) -> float:
    """Independent of metrics.csv: the score Lightning's ModelCheckpoint kept for ``best``."""
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    (checkpoint,) = [v for k, v in state["callbacks"].items()
                     if k.startswith("ModelCheckpoint") and "'monitor': 'val/loss'" in k]
    return float(checkpoint["best_model_score"])


def trial_folders(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "trials").iterdir()) if (out / "trials").exists() else []


# --- parameter specs ------------------------------------------------------------------------
def test_values_are_typed_by_the_config_field() -> None:
    base = TrainConfig()
    weights = parse_param("gan.l1_weight=1,8,64,512", base)
    assert weights.kind == "choice" and weights.choices == (1.0, 8.0, 64.0, 512.0)
    assert all(isinstance(v, float) for v in weights.choices)
    assert parse_param("data.batch_size=int:8:11", base).grid_values() == [8, 9, 10, 11]
    lr = parse_param("optim.lr=log:1e-5:1e-3", base)
    assert (lr.kind, lr.low, lr.high) == ("log", 1e-5, 1e-3)
    assert parse_param("model.kwargs.width=8,16", base).choices == (8, 16)  # free-form: YAML
    assert parse_param("gan.d_lr=null,0.001", base).choices == (None, 0.001)  # Optional[float]
    betas = parse_param("optim.betas=[0.9,0.99],[0.5,0.999]", base)
    config = apply_params(base, {"optim.betas": betas.choices[1]})
    assert config.optim.betas == (0.5, 0.999)
    assert base.optim.betas == (0.9, 0.999)  # the base is never modified


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("optim.lrr=1,2", "unknown option 'optim.lrr'"),
        ("optim=1", "is a section"),
        ("optim.lr=log:1e-3:1e-5", "LO must be below HI"),
        ("optim.lr=float:0.1:0.1", "LO must be below HI"),
        ("optim.lr=log:0:1e-3", "LO > 0"),
        ("optim.lr=float:abc:1", "'abc' is not a number"),
        ("data.batch_size=int:8:9.5", "not an integer"),
        ("data.batch_size=float:8:32", "is an integer"),
        ("data.batch_size=8,12.5", "expected a valid integer"),
        ("gan.l1_weight=1,heavy", "expected a valid number"),
        ("gan.d_lr=abc", "expected a valid number"),
        ("loss.pixel=int:1:3", "not a number"),
        ("gan.l1_weight=1,1", "given twice"),
        ("optim.lr", "expected PATH=VALUES"),
    ],
)
def test_bad_specs_raise_one_line(spec: str, fragment: str) -> None:
    with pytest.raises(ChromalabError) as error:
        parse_param(spec, TrainConfig())
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_same_path_twice_is_rejected() -> None:
    with pytest.raises(ChromalabError, match="given twice"):
        parse_params(["optim.lr=0.1,0.2", "optim.lr=0.3"], TrainConfig())


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--param", "optim.lrr=1e-3,1e-2"], "unknown option 'optim.lrr'"),
        (["--param", "optim.lr=log:1e-2:1e-4", "--trials", "2"], "LO must be below HI"),
        (["--param", "data.batch_size=8,abc"], "expected a valid integer"),
        (["--param", "optim.lr=log:1e-5:1e-3", "--sampler", "grid"], "grid sampler needs a list"),
        (["--param", "optim.lr=1e-3,1e-2", "--metric", "sharpness"], "unknown metric 'sharpness'"),
        (["--param", "optim.lr=1e-3,1e-2", "--metric", "colorfulness_truth"], "cannot be optimized"),
        (["--param", "optim.lr=log:1e-5:1e-3", "--sampler", "tpe"], "needs --trials"),
        (["--param", "optim.lr=1e-3", "--sampler", "random"], "needs --trials"),
        (["--metric", "val_loss"], "no --param"),
    ],
)
def test_cli_rejects_bad_sweeps_before_training(
    tmp_path: Path, photo_dir: Path, capsys: pytest.CaptureFixture[str], options: list[str], fragment: str
) -> None:
    out = tmp_path / "sweep"
    sampler = [] if "--sampler" in options else ["--sampler", "grid"]
    code = sweep(tiny_config(tmp_path), photo_dir, out, *sampler, *options)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("chromalab sweep: error:") and fragment in err
    assert not (out / "trials").exists() and not (out / "study.db").exists()


# --- a grid sweep, its report, and resuming it ----------------------------------------------
@pytest.fixture(scope="module")
def grid_sweep(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grid of 3 learning rates stopped after 2 trials (as a budget would), scored by PSNR."""
    folder = tmp_path_factory.mktemp("grid")
    out = folder / "lr-grid"
    code = sweep(tiny_config(folder), photo_dir, out, "--param", f"optim.lr={','.join(LRS)}",
                 "--sampler", "grid", "--trials", "2", "--metric", "psnr", "--extra-metrics", "ssim",
                 "--eval-size", "32")
    assert code == 0
    return out


def test_grid_sweep_writes_table_plots_and_best_config(grid_sweep: Path, photo_dir: Path) -> None:
    from chromalab.data.folder import index_folder
    from chromalab.evaluation import evaluate
    from chromalab.inference.colorizer import Colorizer

    assert trial_folders(grid_sweep) == ["trial-0000", "trial-0001"]
    rows = read_csv(grid_sweep / "trials.csv")
    assert [r["trial"] for r in rows] == ["0", "1"] and {r["status"] for r in rows} == {"complete"}
    assert len({r["optim.lr"] for r in rows}) == 2 and {float(r["optim.lr"]) for r in rows} <= {float(v) for v in LRS}
    for row in rows:
        run_dir = grid_sweep / "trials" / f"trial-{int(row['trial']):04d}"
        assert (run_dir / "model.safetensors").is_file()
        assert TrainConfig.from_yaml(run_dir / "config.yaml").optim.lr == float(row["optim.lr"])
        assert float(row["val_loss"]) == pytest.approx(checkpointed_best_val_loss(run_dir), rel=1e-6)
        assert 0 < float(row["ssim"]) <= 1 and float(row["minutes"]) > 0
    # PSNR on the run's own validation split, measured here without the sweep's plumbing.
    _, held_out = index_folder(photo_dir).split(0.2, 0)
    best_row = max(rows, key=lambda r: float(r["psnr"]))
    best_dir = grid_sweep / "trials" / f"trial-{int(best_row['trial']):04d}"
    reference = evaluate(Colorizer.load(best_dir), held_out, size=32, metrics=["psnr"], progress=False)
    assert float(best_row["psnr"]) == pytest.approx(reference.summary["psnr"], rel=1e-5)
    assert [r["best"] for r in rows].count("1") == 1 and best_row["best"] == "1"

    markdown = (grid_sweep / "trials.md").read_text().splitlines()
    bold = [line for line in markdown if "**" in line]
    assert len(bold) == 1 and bold[0].startswith(f"| **{best_row['trial']}** | **complete** |")
    assert "psnr (higher is better)" in markdown[0]

    for name in ("metric_vs_params.png", "parallel_coordinates.png"):
        with Image.open(grid_sweep / name) as image:
            assert image.format == "PNG" and image.width > 200 and image.height > 150

    best = TrainConfig.from_yaml(grid_sweep / "best.yaml")
    assert best.optim.lr == float(best_row["optim.lr"])
    assert best.model.name == "unet-tiny" and best.data.size == 32 and best.data.path == str(photo_dir)
    assert best.out == "runs/lr-grid-best"  # training it again never writes into the sweep


def test_interrupted_grid_sweep_resumes_with_only_the_missing_point(
    grid_sweep: Path, photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / grid_sweep.name  # same folder name = same study name
    shutil.copytree(grid_sweep, out)
    first_ckpt = out / "trials" / "trial-0000" / "checkpoints" / "last.ckpt"
    stamp = first_ckpt.stat().st_mtime_ns
    options = ["--param", f"optim.lr={','.join(LRS)}", "--sampler", "grid", "--metric", "psnr",
               "--extra-metrics", "ssim", "--eval-size", "32"]
    capsys.readouterr()
    assert sweep(tiny_config(tmp_path), photo_dir, out, *options) == 0
    assert "2/3 trials finished, running up to 1 more" in capsys.readouterr().out
    assert trial_folders(out) == ["trial-0000", "trial-0001", "trial-0002"]
    assert first_ckpt.stat().st_mtime_ns == stamp  # finished trials were not trained again
    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(study.trials) == 3 and len(complete) == 3
    assert sorted(t.params["optim.lr"] for t in complete) == sorted(float(v) for v in LRS)
    assert len(read_csv(out / "trials.csv")) == 3

    # Once the grid is done, running again trains nothing.
    assert sweep(tiny_config(tmp_path), photo_dir, out, *options) == 0
    assert "all 3 trials are finished" in capsys.readouterr().out
    assert len(trial_folders(out)) == 3
    # A different search on the same folder is refused instead of muddling the study.
    assert sweep(tiny_config(tmp_path), photo_dir, out, "--param", "optim.lr=0.5", "--sampler", "grid") == 2
    assert "was started with --param optim.lr=" in capsys.readouterr().err


def test_sigterm_stops_the_sweep_instead_of_failing_the_trial(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A SIGTERM that also killed a DataLoader worker (the error PyTorch raises replaces the
    interruption) stops the sweep; the trial is queued again, not recorded as a failed point."""
    from chromalab.training import trainer

    out = tmp_path / "lr-grid"
    options = ["--param", "optim.lr=0.001,0.01", "--sampler", "grid", "--metric", "val_loss"]
    with monkeypatch.context() as patch:
        patch.setattr(trainer, "train", train_then_sigterm(trainer.train, worker_error=True))
        assert sweep(tiny_config(tmp_path), photo_dir, out, *options) == 130
    printed = capsys.readouterr()
    assert "interrupted" in printed.err and "training failed" not in printed.out
    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 1 and study.trials[0].user_attrs.get("interrupted") is True
    assert "error" not in study.trials[0].user_attrs

    assert sweep(tiny_config(tmp_path), photo_dir, out, *options) == 0  # the same command continues
    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2


# --- pruning --------------------------------------------------------------------------------
def fake_trainer(loss: float, sanity: bool = False, last: bool = False) -> types.SimpleNamespace:
    """What the callback reads of a Lightning Trainer; ``last``: no training step is left."""
    return types.SimpleNamespace(
        sanity_checking=sanity, callback_metrics={"val/loss": torch.tensor(loss)},
        global_step=10 if last else 5, estimated_stepping_batches=10,
    )


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # the diverged trial, on purpose
def test_pruning_callback_stops_a_trial_worse_than_the_median(direction: str) -> None:
    study = optuna.create_study(direction=direction, pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    sign = 1.0 if direction == "minimize" else -1.0  # a maximized metric: the pruner sees -loss
    for loss in (0.5, 0.7):  # two finished trials; median loss at round 0: 0.6
        trial = study.ask()
        ReportToPruner(trial, sign=sign).on_validation_end(fake_trainer(loss), None)
        study.tell(trial, sign * loss)

    good = study.ask()
    callback = ReportToPruner(good, sign=sign)
    callback.on_validation_end(fake_trainer(123.0, sanity=True), None)  # sanity check: ignored
    callback.on_validation_end(fake_trainer(0.4), None)
    assert study._storage.get_trial(good._trial_id).intermediate_values == {0: pytest.approx(sign * 0.4)}

    bad = study.ask()
    with pytest.raises(optuna.TrialPruned, match="validation round 0"):
        ReportToPruner(bad, sign=sign).on_validation_end(fake_trainer(0.9), None)
    # At the run's last validation the training is paid for: report, but let it finish.
    finished = study.ask()
    ReportToPruner(finished, sign=sign).on_validation_end(fake_trainer(0.9, last=True), None)
    assert study._storage.get_trial(finished._trial_id).intermediate_values == {0: pytest.approx(sign * 0.9)}
    diverged = study.ask()
    with pytest.raises(optuna.TrialPruned):
        ReportToPruner(diverged, sign=sign).on_validation_end(fake_trainer(math.nan), None)


def test_sweep_prunes_a_real_trial_and_reports_it(tmp_path: Path, photo_dir: Path) -> None:
    """Two earlier trials reached a loss no 1-step training can: the next one is pruned."""
    out = tmp_path / "pruned"
    out.mkdir()
    study = optuna.create_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    lr = optuna.distributions.CategoricalDistribution([0.001, 0.01])
    for value in (0.001, 0.01):
        study.add_trial(optuna.trial.create_trial(
            params={"optim.lr": value}, distributions={"optim.lr": lr}, value=1e-6,
            intermediate_values={0: 1e-6},
        ))
    code = sweep(tiny_config(tmp_path), photo_dir, out, "--param", "optim.lr=0.001,0.01", "--sampler",
                 "random", "--trials", "3", "--prune-startup", "2", "--prune-warmup", "0",
                 "--set", "trainer.epochs=2")  # two validation rounds: the last one never prunes
    assert code == 0
    rows = read_csv(out / "trials.csv")
    assert [r["status"] for r in rows] == ["complete", "complete", "pruned"]
    assert rows[2]["note"] == "pruned after validation round 0" and float(rows[2]["val_loss"]) > 1e-3
    run_dir = out / "trials" / "trial-0002"
    assert (run_dir / "config.yaml").is_file() and not (run_dir / "model.safetensors").exists()


def test_importance_plot_needs_two_params_and_enough_trials(tmp_path: Path) -> None:
    base = TrainConfig()
    params = parse_params(["optim.lr=log:1e-4:1e-2", "data.batch_size=int:8:32"], base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: math.log10(params[0].suggest(t)) ** 2 + 1e-3 * params[1].suggest(t), n_trials=6)
    report = write_report(study, params, "val_loss", base, tmp_path)
    assert [p.name for p in report.plots] == ["metric_vs_params.png", "importance.png"]
    best = TrainConfig.from_yaml(report.best_yaml)
    assert best.optim.lr == study.best_params["optim.lr"] and best.data.batch_size == study.best_params["data.batch_size"]

    few = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    few.optimize(lambda t: params[0].suggest(t) + params[1].suggest(t), n_trials=3)
    (tmp_path / "few").mkdir()
    assert [p.name for p in write_report(few, params, "val_loss", base, tmp_path / "few").plots] == [
        "metric_vs_params.png", "parallel_coordinates.png"]


# --- queuing failed trials again (no training: a plain Optuna objective) ---------------------
def test_interrupted_and_failed_grid_points_are_queued_again_once() -> None:
    from chromalab.sweep.study import requeue_unfinished

    space = {"x": [1, 2, 3, 4]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=0))

    def first_run(trial: optuna.Trial) -> float:
        x = trial.suggest_categorical("x", space["x"])
        if trial.number == 1:
            raise ValueError("a bad combination")  # errors are retried once
        if trial.number == 2:
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        study.optimize(first_run, n_trials=4, catch=(ValueError,))
    failed = {t.number: t.params["x"] for t in study.trials if t.state.name == "FAIL"}
    assert sorted(failed) == [1, 2]
    assert requeue_unfinished(study) == 2
    assert requeue_unfinished(study) == 0  # queued once, not again

    def second_run(trial: optuna.Trial) -> float:
        x = trial.suggest_categorical("x", space["x"])
        if x == failed[1]:
            raise ValueError("still a bad combination")
        return x

    resumed = optuna.load_study(study_name=study.study_name, storage=study._storage,
                                sampler=optuna.samplers.GridSampler(space, seed=0))
    resumed.optimize(second_run, n_trials=4, catch=(ValueError,))
    complete = sorted(t.params["x"] for t in resumed.trials if t.state.name == "COMPLETE")
    assert complete == sorted(set(space["x"]) - {failed[1]})  # every other point exactly once
    assert requeue_unfinished(resumed) == 0  # the retry failed too: it stays failed
    assert resumed.sampler.is_exhausted(resumed)
