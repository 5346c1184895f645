"""scripts/near_duplicates.py: resized and re-encoded copies of evaluation photos are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_script, synthetic_photo


@pytest.fixture(scope="module")
def near_duplicates():
    return load_script("near_duplicates")


def test_finds_a_resized_copy_and_nothing_else(near_duplicates, tmp_path: Path, capsys) -> None:
    train, evaluation = tmp_path / "train", tmp_path / "eval"
    train.mkdir(), evaluation.mkdir()
    for i in range(6):
        synthetic_photo(100 + i, 96, 96).save(train / f"other{i}.png")
    original = synthetic_photo(7, 256, 256)
    original.save(evaluation / "truth.png")
    original.resize((128, 128)).save(train / "copy.jpg", quality=80)  # what a scraper would keep
    report = tmp_path / "report.md"
    assert near_duplicates.main([str(train), str(evaluation), "--out", str(report)]) == 1
    text = report.read_text()
    assert "**1 pair(s) found.**" in text and "copy.jpg" in text and "other" not in text.split("found")[1]
    # An existing report is never replaced without --overwrite.
    assert near_duplicates.main([str(train), str(evaluation), "--out", str(report)]) == 2
    assert "exists" in capsys.readouterr().err
    (train / "copy.jpg").unlink()
    assert near_duplicates.main([str(train), str(evaluation), "--out", str(report), "--overwrite"]) == 0
    assert "**0 pair(s) found.**" in report.read_text()


def test_missing_folder_is_one_line(near_duplicates, tmp_path: Path, capsys) -> None:
    assert near_duplicates.main([str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nope'}: no such folder"


def test_matches_lists_each_evaluation_photo_with_a_near_pair_once(near_duplicates, tmp_path: Path) -> None:
    train, evaluation = tmp_path / "train", tmp_path / "eval"
    train.mkdir(), evaluation.mkdir()
    original = synthetic_photo(7, 256, 256)
    original.save(evaluation / "leaked.png")
    synthetic_photo(8, 256, 256).save(evaluation / "clean.png")
    original.resize((128, 128)).save(train / "copy1.jpg", quality=80)
    original.resize((160, 160)).save(train / "copy2.png")
    matches = tmp_path / "matches.txt"
    assert near_duplicates.main([str(train), str(evaluation), "--matches", str(matches)]) == 1
    assert matches.read_text() == f"{(evaluation / 'leaked.png').resolve()}\n"
