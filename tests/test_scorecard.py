"""chromalab scorecard: gray and each model on every slice and on val (clean and damaged)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from chromalab.cli import main
from chromalab.evaluation.scorecard import score, scorecard_sets


@pytest.fixture(scope="module")
def slices(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two kinds of photo: the fixture's sub-folders a/ and b/ as 'birds' and 'people'."""
    root = tmp_path_factory.mktemp("slices")
    shutil.copytree(photo_dir / "a", root / "people")
    shutil.copytree(photo_dir / "b", root / "birds")
    (root / ".hidden").mkdir()  # not a slice
    return root


def test_sets_are_the_sorted_slices_then_val_clean_and_damaged(slices: Path, photo_dir: Path) -> None:
    sets = scorecard_sets(slices, photo_dir)
    assert [(s.name, s.damage) for s in sets] == [
        ("birds", False), ("people", False), (photo_dir.name, False), (f"{photo_dir.name} (damaged)", True)]
    assert [s.name for s in scorecard_sets(slices, None)] == ["birds", "people"]
    assert [s.damage for s in scorecard_sets(None, photo_dir, damaged_val=False)] == [False]


def test_scorecard_command_writes_table_csv_json_and_sheet(slices: Path, photo_dir: Path, tiny_model: Path,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "card"
    assert main(["scorecard", str(tiny_model), "--slices", str(slices), "--val", str(photo_dir),
                 "--size", "32", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scorecard.csv", "scorecard.json", "scorecard.md", "sheet.jpg"]
    rows = list(csv.DictReader((out / "scorecard.csv").open()))
    sets = ["birds", "people", photo_dir.name, f"{photo_dir.name} (damaged)"]
    assert [(r["set"], r["model"]) for r in rows] == [(s, m) for s in sets for m in ("gray", "tiny")]
    photos = {"birds": 6, "people": 6, photo_dir.name: 12, f"{photo_dir.name} (damaged)": 12}
    for row in rows:
        assert int(row["photos"]) == photos[row["set"]]
        assert float(row["fid"]) > 0 and 0 < float(row["colorfulness_truth"])
        if row["model"] == "gray":
            assert float(row["fid_ratio"]) == 1.0 and float(row["colorfulness"]) == 0.0
        else:
            gray = next(r for r in rows if r["set"] == row["set"] and r["model"] == "gray")
            assert float(row["fid_ratio"]) == pytest.approx(float(row["fid"]) / float(gray["fid"]))
    # Gray's damaged row differs from its clean row: the inputs were damaged, the truth was not.
    gray_rows = {r["set"]: r for r in rows if r["model"] == "gray"}
    assert gray_rows[photo_dir.name]["colorfulness_truth"] == gray_rows[f"{photo_dir.name} (damaged)"]["colorfulness_truth"]
    assert gray_rows[photo_dir.name]["psnr"] != gray_rows[f"{photo_dir.name} (damaged)"]["psnr"]
    table = (out / "scorecard.md").read_text()
    assert "| birds | 6 | gray | " in table and "FID / gray" in table
    assert json.loads((out / "scorecard.json").read_text())["sets"][3]["damage"] is True
    sheet = Image.open(out / "sheet.jpg")
    assert sheet.width >= 3 * 32 and sheet.height >= 4 * 2 * 32  # 4 sets x 2 photos: gray | tiny | truth
    assert "Scorecard" in capsys.readouterr().out

    # A second run never replaces the first one's files.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["scorecard", str(tiny_model), "--slices", str(slices), "--out", str(out)]) == 2
    assert "already holds scorecard.md" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("args, message", [
    (["--slices", "MISSING"], "no such folder"),
    (["--val", "MISSING"], "no such folder"),
    ([], "nothing to score: give --slices, --val or both"),
])
def test_bad_sets_are_one_line(args: list[str], message: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(tmp_path / a) if a == "MISSING" else a for a in args]
    assert main(["scorecard", "default", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_a_slices_folder_without_sub_folders_is_refused(photo_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "flat"
    empty.mkdir()
    (empty / "photo.png").write_bytes((photo_dir / "a" / "photo01.png").read_bytes())
    with pytest.raises(Exception, match="no sub-folders"):
        scorecard_sets(empty)


def test_score_needs_a_model(slices: Path) -> None:
    with pytest.raises(Exception, match="at least one model"):
        score([], scorecard_sets(slices))
