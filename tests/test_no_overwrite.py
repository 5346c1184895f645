"""Never lose a user's file: every command that writes files, with a user's own file already
at each path it may write.

For each command (colorize, evaluate, compare, explore, export, sweep; train and prepare are
in test_run_folders.py and test_prepare.py) a foreign file with known bytes is put at each of
its output paths. Without --overwrite the command refuses in one line per path (colorize
refuses per photo and goes on: exit 1; the report commands refuse before any work: exit 2)
and the bytes stay exactly as they were; with --overwrite (where the command has it) it runs
and the paths hold its results. README.md, "Guarantees".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chromalab.checkpoint import ModelSpec, load_network, save_network
from chromalab.cli import main
from chromalab.data.explore import PLOT_FILES, TABLE_FILES
from chromalab.evaluation.compare import COMPARE_FILES
from chromalab.evaluation.report import REPORT_FILES
from chromalab.models.registry import create_model
from chromalab.sweep.outputs import RECORD, STUDY_DB
from chromalab.sweep.outputs import REPORT_FILES as SWEEP_FILES
from tests.conftest import synthetic_photo

EXPLORE_FILES = TABLE_FILES + PLOT_FILES


def plant(path: Path) -> bytes:
    """A user's own file at ``path``: known bytes that no chromalab output could have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = f"a user's own {path.name}: not chromalab's to replace\n".encode()
    path.write_bytes(data)
    return data


def unchanged(planted: dict[Path, bytes]) -> bool:
    return all(path.is_file() and path.read_bytes() == data for path, data in planted.items())


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def assert_refused_up_front(code: int, err: str, names: list[str]) -> None:
    """Exit 2 (nothing done), one line, naming every planted path and the way out."""
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert all(name in lines[0] for name in names) and "--overwrite" in lines[0], lines


# --- colorize -----------------------------------------------------------------------------------


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """Two photos in a small tree: the outputs mirror it."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    synthetic_photo(0, 40, 32).save(root / "a.png")
    synthetic_photo(1, 36, 28).save(root / "sub" / "b.jpg")
    return root


def test_colorize_refuses_each_taken_output_and_goes_on(tiny_model: Path, photos: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    planted = {out / "a.png": plant(out / "a.png")}  # b.jpg's output is free
    code, stdout, err = run(["colorize", str(photos), "--model", str(tiny_model), "--out", str(out)], capsys)
    lines = error_lines(err)
    assert code == 1 and len(lines) == 1 and "a.png" in lines[0] and "exists (use --overwrite" in lines[0]
    assert unchanged(planted) and (out / "sub" / "b.jpg").is_file()  # the batch went on
    assert "colorized 1 photo(s)" in stdout


@pytest.mark.parametrize("image_format", [None, "png"])
def test_colorize_leaves_every_taken_output_alone_then_overwrite_replaces_them(
    tiny_model: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], image_format: str | None
) -> None:
    out = tmp_path / "out"
    suffix = f".{image_format}" if image_format else None
    targets = [out / ("a" + (suffix or ".png")), out / "sub" / ("b" + (suffix or ".jpg"))]
    planted = {path: plant(path) for path in targets}
    argv = ["colorize", str(photos), "--model", str(tiny_model), "--out", str(out)]
    argv += ["--format", image_format] if image_format else []
    code, _, err = run(argv, capsys)
    lines = error_lines(err)
    assert code == 1 and len(lines) == len(targets) and "Traceback" not in err
    for path in targets:
        assert sum(path.name in line and "exists (use --overwrite" in line for line in lines) == 1, lines
    assert unchanged(planted)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(targets)  # nothing else, no temp files

    code, _, err = run([*argv, "--overwrite"], capsys)
    assert code == 0 and not error_lines(err)
    for path, source in zip(targets, [photos / "a.png", photos / "sub" / "b.jpg"]):
        with Image.open(path) as result, Image.open(source) as original:
            assert result.size == original.size


def test_colorize_samples_refuse_a_photo_whose_variant_is_taken(tmp_path: Path, photos: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Sampling needs a model with dropout: an untrained unet-tiny with it is enough here.
    net = create_model("unet-tiny", out_channels=2, dropout=0.5)
    model = save_network(net, ModelSpec("unet-tiny", {"out_channels": 2, "dropout": 0.5}, "lab", 32),
                         tmp_path / "dropout.safetensors")
    out = tmp_path / "out"
    planted = {out / "a-s1.png": plant(out / "a-s1.png")}
    argv = ["colorize", str(photos), "--model", str(model), "--out", str(out), "--samples", "2"]
    code, _, err = run(argv, capsys)
    lines = error_lines(err)
    assert code == 1 and len(lines) == 1 and "a-s1.png exists" in lines[0]
    assert unchanged(planted) and not (out / "a-s0.png").exists()  # a photo's variants: all or none
    assert (out / "sub" / "b-s0.jpg").is_file() and (out / "sub" / "b-s1.jpg").is_file()
    code, _, _ = run([*argv, "--overwrite"], capsys)
    assert code == 0 and Image.open(out / "a-s1.png").size == (40, 32)


def test_colorize_video_keeps_a_taken_output(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from chromalab.inference.video import probe_video
    from tests.test_video import pan_frames, write_clip

    clip = write_clip(tmp_path / "clip.mp4", pan_frames(4, 48, 32), audio=None)
    target = tmp_path / "clip-color.mp4"
    planted = {target: plant(target)}
    argv = ["colorize", str(clip), "--model", str(tiny_model), "--out", str(target)]
    code, _, err = run(argv, capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "exists (use --overwrite" in err and unchanged(planted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip-color.mp4", "clip.mp4"]
    code, _, _ = run([*argv, "--overwrite"], capsys)
    assert code == 0 and probe_video(target).frames == 4


# --- evaluate and compare ----------------------------------------------------------------------


def evaluate_argv(tiny_model: Path, photo_dir: Path, out: Path) -> list[str]:
    return ["evaluate", "--model", str(tiny_model), "--data", str(photo_dir), "--size", "32", "--limit", "4",
            "--metrics", "psnr", "--out", str(out)]


def compare_argv(tiny_model: Path, photo_dir: Path, out: Path) -> list[str]:
    return ["compare", str(tiny_model), "--baselines", "--data", str(photo_dir), "--size", "32", "--limit", "4",
            "--metrics", "psnr", "--out", str(out)]


def check_evaluate_report(out: Path) -> None:
    assert json.loads((out / "metrics.json").read_text())["settings"]["images"] == 4
    assert Image.open(out / "samples.png").format == "PNG"


def check_compare_report(out: Path) -> None:
    assert [m["name"] for m in json.loads((out / "metrics.json").read_text())["models"]] == ["tiny", "gray", "mean-ab"]
    for name in ("grid.png", "curves.png"):
        assert Image.open(out / name).format == "PNG"


# The two report commands: how each is called, the files it writes, what its fresh report holds.
REPORT_COMMANDS = {
    "evaluate": (evaluate_argv, tuple(REPORT_FILES), check_evaluate_report),
    "compare": (compare_argv, tuple(COMPARE_FILES), check_compare_report),
}


@pytest.mark.parametrize(("command", "name"), [
    (command, name) for command, (_, files, _) in REPORT_COMMANDS.items() for name in files
])
def test_report_commands_refuse_any_taken_report_file(command: str, name: str, tiny_model: Path, photo_dir: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, _, _ = REPORT_COMMANDS[command]
    out = tmp_path / "report"
    planted = {out / name: plant(out / name)}
    code, _, err = run(argv(tiny_model, photo_dir, out), capsys)
    assert_refused_up_front(code, err, [name])
    assert unchanged(planted) and sorted(p.name for p in out.iterdir()) == [name]


@pytest.mark.parametrize("command", REPORT_COMMANDS)
def test_report_commands_overwrite_replaces_every_report_file(command: str, tiny_model: Path, photo_dir: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, files, check_report = REPORT_COMMANDS[command]
    out = tmp_path / "report"
    planted = {out / name: plant(out / name) for name in files}
    code, _, err = run(argv(tiny_model, photo_dir, out), capsys)
    assert_refused_up_front(code, err, list(files))
    assert unchanged(planted)
    code, _, _ = run([*argv(tiny_model, photo_dir, out), "--overwrite"], capsys)
    assert code == 0
    check_report(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(files)


# --- explore -------------------------------------------------------------------------------------


def explore_argv(photo_dir: Path, out: Path) -> list[str]:
    return ["explore", str(photo_dir), "--out", str(out), "--workers", "1", "--limit", "3", "--no-progress"]


@pytest.mark.parametrize("name", EXPLORE_FILES)
def test_explore_refuses_any_taken_report_file(name: str, photo_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    planted = {out / name: plant(out / name)}
    code, _, err = run(explore_argv(photo_dir, out), capsys)
    assert_refused_up_front(code, err, [name])
    assert unchanged(planted) and sorted(p.name for p in out.iterdir()) == [name]


def test_explore_overwrite_replaces_every_report_file(photo_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    planted = {out / name: plant(out / name) for name in EXPLORE_FILES}
    code, _, err = run(explore_argv(photo_dir, out), capsys)
    assert_refused_up_front(code, err, list(EXPLORE_FILES))
    assert unchanged(planted)
    code, _, _ = run([*explore_argv(photo_dir, out), "--overwrite"], capsys)
    assert code == 0 and json.loads((out / "stats.json").read_text())["photos"] == 3
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPLORE_FILES)  # no temporary files left


def test_a_file_that_appears_during_the_work_is_kept(photo_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # After the up-front check, outputs are published with a hard link, which the kernel
    # refuses for a taken name: a file the user saves there meanwhile survives too.
    from chromalab.data import explore

    out = tmp_path / "report"
    real = explore.summarize
    planted: dict[Path, bytes] = {}

    def summarize_then_user_saves(stats: explore.CollectionStats) -> dict:
        planted[out / "report.md"] = plant(out / "report.md")
        return real(stats)

    monkeypatch.setattr(explore, "summarize", summarize_then_user_saves)
    with pytest.raises(explore.ChromalabError, match="report.md: appeared while exploring; kept"):
        explore.explore_collection(photo_dir, out, workers=1, limit=2, progress=False, plots=False)
    assert unchanged(planted) and not [p for p in out.iterdir() if p.name.startswith(".chromalab-")]


# --- export --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_format", ["safetensors", "onnx"])
def test_export_keeps_a_taken_out_then_overwrite_replaces_it(model_format: str, tiny_model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"model.{model_format}"
    planted = {out: plant(out)}
    argv = ["export", "--model", str(tiny_model), "--format", model_format, "--out", str(out)]
    code, _, err = run(argv, capsys)
    assert_refused_up_front(code, err, [out.name])
    assert unchanged(planted) and sorted(tmp_path.iterdir()) == [out]
    code, _, _ = run([*argv, "--overwrite"], capsys)
    assert code == 0 and out.read_bytes() != planted[out]
    if model_format == "safetensors":
        assert load_network(out)[1].name == "unet-tiny"
    else:
        import onnx

        onnx.checker.check_model(str(out))


def test_export_never_replaces_a_folder(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model.onnx"
    planted = {folder / "keep.txt": plant(folder / "keep.txt")}
    code, _, err = run(["export", "--model", str(tiny_model), "--out", str(folder), "--overwrite"], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "is a folder" in err and unchanged(planted)


@pytest.mark.parametrize("command", ["evaluate", "compare", "explore"])
def test_an_out_that_is_a_users_file_is_refused(command: str, tiny_model: Path, photo_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    planted = {out: plant(out)}
    argv = {"evaluate": evaluate_argv(tiny_model, photo_dir, out), "compare": compare_argv(tiny_model, photo_dir, out),
            "explore": explore_argv(photo_dir, out)}[command]
    code, _, err = run([*argv, "--overwrite"], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "not a folder" in err and unchanged(planted)


# --- sweep ---------------------------------------------------------------------------------------

SWEEP_YAML = """\
model: {name: unet-tiny}
data: {size: 32, batch_size: 8, workers: 0, val_fraction: 0.2}
trainer: {epochs: 1, accelerator: cpu, devices: 1, samples: 2, max_steps: 1}
optim: {warmup_steps: 1}
"""


def sweep_argv(tmp_path: Path, photo_dir: Path, out: Path) -> list[str]:
    config = tmp_path / "tiny.yaml"
    config.write_text(SWEEP_YAML)
    return ["sweep", "--config", str(config), "--data", str(photo_dir), "--out", str(out), "--no-progress",
            "--param", "optim.lr=0.001", "--sampler", "grid"]


@pytest.mark.parametrize("name", [STUDY_DB, RECORD, *SWEEP_FILES])
def test_sweep_refuses_any_taken_path_before_training(name: str, photo_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    planted = {out / name: plant(out / name)}
    code, _, err = run(sweep_argv(tmp_path, photo_dir, out), capsys)
    assert_refused_up_front(code, err, [name])
    assert unchanged(planted) and sorted(p.name for p in out.iterdir()) == [name]  # no study, no trial


def test_sweep_overwrite_replaces_them_and_never_writes_into_a_users_trial_folder(
    photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    planted = {out / name: plant(out / name) for name in (STUDY_DB, RECORD, *SWEEP_FILES)}
    trial_path = out / "trials" / "trial-0000"
    kept = {trial_path: plant(trial_path)}  # a file where the first trial's folder would go
    argv = sweep_argv(tmp_path, photo_dir, out)
    code, _, err = run(argv, capsys)
    assert_refused_up_front(code, err, [path.name for path in planted])
    assert unchanged(planted) and unchanged(kept)

    code, stdout, _ = run([*argv, "--overwrite"], capsys)
    assert code == 0 and "-> " + str(out / "trials" / "trial-0000-2") in stdout
    assert unchanged(kept) and (out / "trials" / "trial-0000-2" / "model.safetensors").is_file()
    rows = (out / "trials.csv").read_text()
    assert "trial-0000-2" in rows and "complete" in rows  # scored from the folder it trained in
    assert (out / STUDY_DB).read_bytes().startswith(b"SQLite format 3")
    record = json.loads((out / RECORD).read_text())
    assert record["written_by"] == "chromalab sweep" and STUDY_DB in record["files"]

    # importance.png is drawn from 5 trials on: the user's file there was not needed, so it is
    # still theirs, and without --overwrite the next run stops at it.
    assert unchanged({out / "importance.png": planted[out / "importance.png"]})
    code, _, err = run(argv, capsys)
    assert_refused_up_front(code, err, ["importance.png"])
    assert "trials.md" not in err
    (out / "importance.png").unlink()
    # Its own files it updates on the next run without --overwrite ...
    code, stdout, _ = run(argv, capsys)
    assert code == 0 and "all 1 trials are finished" in stdout
    # A folder from before sweep.json existed (its own Optuna study.db, no record) continues.
    (out / RECORD).unlink()
    code, stdout, _ = run(argv, capsys)
    assert code == 0 and "all 1 trials are finished" in stdout and (out / RECORD).is_file()
    # ... but a file the user changed since is theirs again.
    edited = {out / "best.yaml": (out / "best.yaml").read_bytes() + b"# my notes\n"}
    (out / "best.yaml").write_bytes(edited[out / "best.yaml"])
    code, _, err = run(argv, capsys)
    assert_refused_up_front(code, err, ["best.yaml"])
    assert unchanged(edited)


def test_sweep_trials_that_is_a_users_file_is_refused_even_with_overwrite(
    photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    planted = {out / "trials": plant(out / "trials")}
    code, _, err = run([*sweep_argv(tmp_path, photo_dir, out), "--overwrite"], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "not a folder" in err and unchanged(planted)
    assert sorted(p.name for p in out.iterdir()) == ["trials"]


def test_the_shared_image_writer_never_replaces_unasked(tmp_path: Path) -> None:
    # The shared writer all image outputs use: a taken path raises, a free one gets a full file.
    from chromalab.data.images import BadImageError, save_image_atomic

    path = tmp_path / "x.png"
    planted = {path: plant(path)}
    with pytest.raises(BadImageError, match="output exists"):
        save_image_atomic(Image.new("RGB", (8, 8)), path)
    assert unchanged(planted)
    save_image_atomic(Image.fromarray(np.full((8, 8, 3), 7, np.uint8)), path, overwrite=True)
    assert np.asarray(Image.open(path)).max() == 7 and sorted(tmp_path.iterdir()) == [path]


def demo_files(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_second_demo_gets_its_own_folder_and_a_users_files_stay(tiny_model: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo-output"
    code, stdout, _ = run(["demo", "--model", str(tiny_model), "--out", str(out)], capsys)
    first = demo_files(out)
    assert code == 0 and out / "sheet.png" in first and out / "astronaut-colorized.png" in first
    assert str(out.resolve()) in stdout

    # Run again: the first demo's results stay as they were; the second goes to demo-output-2.
    code, stdout, _ = run(["demo", "--model", str(tiny_model), "--out", str(out)], capsys)
    assert code == 0 and demo_files(out) == first
    second = tmp_path / "demo-output-2"
    assert sorted(p.name for p in second.iterdir()) == sorted(p.name for p in first)
    assert str(second.resolve()) in stdout

    # A folder holding a user's own file (named like a demo output) is not written into either.
    users = tmp_path / "mine"
    planted = {users / "astronaut-colorized.png": plant(users / "astronaut-colorized.png")}
    code, _, _ = run(["demo", "--model", str(tiny_model), "--out", str(users)], capsys)
    assert code == 0 and unchanged(planted) and sorted(users.iterdir()) == list(planted)
    assert (tmp_path / "mine-2" / "astronaut-colorized.png").is_file()


def test_demo_overwrite_replaces_its_results_in_place_and_keeps_other_files(tiny_model: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo-output"
    taken = out / "astronaut-colorized.png"
    other = out / "notes.txt"
    plant(taken)
    kept = {other: plant(other)}
    code, _, _ = run(["demo", "--model", str(tiny_model), "--out", str(out), "--overwrite"], capsys)
    assert code == 0 and unchanged(kept) and not (tmp_path / "demo-output-2").exists()
    assert Image.open(taken).size == Image.open(out / "astronaut-gray.png").size  # now an image

    # --overwrite replaces files, never a folder where a result should go: one line, nothing written.
    (tmp_path / "d" / "sheet.png").mkdir(parents=True)
    code, _, err = run(["demo", "--model", str(tiny_model), "--out", str(tmp_path / "d"), "--overwrite"], capsys)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "sheet.png is a folder" in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["sheet.png"]
