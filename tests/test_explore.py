"""chromalab explore: statistics against plain numpy over the same synthetic photos."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from chromalab.color import rgb_to_lab
from chromalab.data import explore
from chromalab.data.explore import (
    LAB_EDGES,
    RGB_EDGES,
    explore_collection,
    histogram_quantile,
)
from chromalab.data.images import rgb_to_lab_array
from tests.conftest import synthetic_photo


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9 color photos of varied sizes, 1 gray, 1 sepia, and two unreadable files."""
    root = tmp_path_factory.mktemp("collection")
    (root / "sub").mkdir()
    for index in range(9):
        size = (40 + 4 * index, 32 + 2 * (index % 3))
        synthetic_photo(index, *size).save(root / ("sub" if index % 2 else ".") / f"color{index}.png")
    gray = synthetic_photo(20).convert("L")
    gray.save(root / "gray.png")
    ImageOps.colorize(gray, black=(40, 26, 13), white=(255, 240, 200)).save(root / "sepia.png")
    (root / "empty.jpg").write_bytes(b"")
    buffer = (root / "color0.png").read_bytes()
    (root / "truncated.png").write_bytes(buffer[: len(buffer) // 2])
    return root


def _pixels(root: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """All pixels of the readable photos, decoded independently of chromalab (all < 256 px)."""
    photos = []
    for path in sorted(root.rglob("*.png")):
        if path.name == "truncated.png":
            continue
        photos.append(np.asarray(Image.open(path).convert("RGB")))
    return np.concatenate([p.reshape(-1, 3) for p in photos]), photos


@pytest.fixture(scope="module")
def report(collection: Path, tmp_path_factory: pytest.TempPathFactory) -> explore.ExploreResult:
    return explore_collection(collection, tmp_path_factory.mktemp("report"), workers=1, progress=False)


def test_rgb_statistics_are_exact(report: explore.ExploreResult, collection: Path) -> None:
    pixels, _ = _pixels(collection)
    rows = {row["channel"]: row for row in report.summary["channels"]}
    for channel, name in enumerate("RGB"):
        values = pixels[:, channel].astype(np.float64)
        row = rows[name]
        assert row["count"] == len(values)
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert row["std"] == pytest.approx(values.std(), rel=1e-12)
        assert (row["min"], row["max"]) == (values.min(), values.max())
        for key, q in (("q25", 25), ("median", 50), ("q75", 75)):
            assert row[key] == np.percentile(values, q, method="inverted_cdf")
    assert report.stats.rgb_hist.sum() == 3 * len(pixels)


def test_lab_statistics_match_numpy(report: explore.ExploreResult, collection: Path) -> None:
    _, photos = _pixels(collection)
    lab = np.concatenate([rgb_to_lab_array(p).reshape(-1, 3) for p in photos]).astype(np.float64)
    rows = {row["channel"]: row for row in report.summary["channels"]}
    for column, name in enumerate("Lab"):
        values = lab[:, column]
        row = rows[name]
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-9)
        assert row["std"] == pytest.approx(values.std(), rel=1e-6)
        assert (row["min"], row["max"]) == (values.min(), values.max())
        for key, q in (("q25", 25), ("median", 50), ("q75", 75)):
            assert abs(row[key] - np.percentile(values, q)) <= 1.0  # the bin width
    assert report.stats.ab_plane.sum() == len(lab)


def test_lab_conversion_agrees_with_the_training_one() -> None:
    rgb = np.array(synthetic_photo(3))
    ours = rgb_to_lab_array(rgb)
    reference = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0)
    assert np.abs(ours - reference.numpy()).max() < 0.5


def test_counts_sizes_gray_share_and_colorfulness(report: explore.ExploreResult, collection: Path) -> None:
    summary = report.summary
    assert summary["photos"] == 11 and summary["unreadable"] == 2
    assert summary["monochrome"] == 2  # the gray and the sepia photo
    assert {e["path"].rsplit("/", 1)[-1] for e in summary["unreadable_files"]} == {"empty.jpg", "truncated.png"}
    sizes = [Image.open(p).size for p in sorted(collection.rglob("*.png")) if p.name != "truncated.png"]
    assert report.stats.widths == Counter(w for w, _ in sizes)
    assert summary["width"]["max"] == max(w for w, _ in sizes)
    # Per-photo colorfulness against the paper's formula, written out here independently.
    with open(report.out / "photos.csv") as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    for path in sorted(collection.rglob("color*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        rg = rgb[..., 0] - rgb[..., 1]
        yb = (rgb[..., 0] + rgb[..., 1]) / 2 - rgb[..., 2]
        expected = np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
        assert float(rows[path.name]["colorfulness"]) == pytest.approx(expected, abs=1e-3)
    assert rows["gray.png"]["colorfulness"] == "0.0" and rows["gray.png"]["monochrome"] == "1"
    assert rows["empty.jpg"]["error"].startswith("empty file")
    assert report.stats.colorfulness_hist.sum() == 11


def test_histogram_quantile_against_numpy() -> None:
    rng = np.random.default_rng(0)
    integers = rng.integers(0, 256, 1001)
    counts = np.bincount(integers, minlength=256)
    floats = rng.normal(0, 30, 5000).clip(-127, 127)
    binned = np.histogram(floats, LAB_EDGES["a"])[0]
    for q in (0.01, 0.25, 0.5, 0.75, 0.99):
        exact = np.percentile(integers, 100 * q, method="inverted_cdf")
        assert histogram_quantile(counts, RGB_EDGES, q, discrete=True) == exact
        assert abs(histogram_quantile(binned, LAB_EDGES["a"], q) - np.percentile(floats, 100 * q)) <= 1.0


def test_parallel_run_adds_up_to_the_same_sums(report: explore.ExploreResult, collection: Path,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(explore, "CHUNK", 3)  # several chunks, so two processes share them
    parallel = explore_collection(collection, tmp_path, workers=2, progress=False, plots=False)
    assert np.array_equal(parallel.stats.rgb_hist, report.stats.rgb_hist)
    assert np.array_equal(parallel.stats.ab_plane, report.stats.ab_plane)
    assert all(np.array_equal(parallel.stats.lab_hist[c], report.stats.lab_hist[c]) for c in "Lab")
    assert np.allclose(parallel.stats.lab_sum, report.stats.lab_sum, rtol=1e-12)
    assert parallel.summary["monochrome"] == report.summary["monochrome"]


def test_report_files_and_cli(collection: Path, tmp_path: Path, report: explore.ExploreResult,
                              capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("report.md", "stats.json", "channels.csv", "histogram_rgb.csv", "histogram_lab.csv",
                 "histogram_ab.csv", "sizes.csv", "photos.csv", "ab_density.png", "histogram_rgb.png",
                 "histogram_lab.png", "sizes.png", "colorfulness.png"):
        assert (report.out / name).stat().st_size > 0, name
    assert Image.open(report.out / "ab_density.png").size[0] > 300
    markdown = (report.out / "report.md").read_text()
    assert "![a*b* density](ab_density.png)" in markdown and "| a |" in markdown
    assert json.loads((report.out / "stats.json").read_text())["photos"] == 11

    from chromalab.cli import main

    out = tmp_path / "cli"
    code = main(["explore", str(collection), "--out", str(out), "--workers", "1", "--limit", "4", "--no-progress"])
    captured = capsys.readouterr()
    assert "photos/s" in captured.out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["photos"] + stats["unreadable"] == 4
    # Exit 1 exactly when some photos were unreadable, each named on stderr in one line.
    assert code == (1 if stats["unreadable"] else 0)
    assert len(captured.err.strip().splitlines()) == stats["unreadable"]
    assert main(["explore", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
