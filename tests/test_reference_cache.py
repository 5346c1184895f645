"""The FID reference cache: a second evaluation of the same photos skips the ground truths'
Inception pass and gives the same FID to the last bit; any change to the photos, the size or
the extractor misses the cache."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from chromalab.evaluation import GrayBaseline, evaluate
from chromalab.evaluation.fid import FEATURE_DIM, FeatureStatistics
from chromalab.evaluation.reference_cache import (CACHE_ENV, load_reference, reference_key, reference_path,
                                                  save_reference)
from tests.conftest import synthetic_photo

SIZE = 32
# The module (the package exports a function of the same name, which shadows it as an attribute).
evaluate_module = importlib.import_module("chromalab.evaluation.evaluate")


class CountingFeatures:
    """A stand-in for Inception: a fixed random projection of the pixels (deterministic,
    different for different photos) that counts the images it has seen."""

    seen = 0

    def __init__(self, device: str = "cpu", identity: str = "fake-extractor") -> None:
        self.identity = identity
        generator = torch.Generator().manual_seed(0)
        self.projection = torch.randn(3 * 8 * 8, FEATURE_DIM, generator=generator, dtype=torch.float64)

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        CountingFeatures.seen += len(images_u8)
        small = torch.nn.functional.adaptive_avg_pool2d(images_u8.double() / 255, 8)
        return small.flatten(1) @ self.projection


@pytest.fixture
def fake_inception(monkeypatch: pytest.MonkeyPatch) -> type[CountingFeatures]:
    monkeypatch.setattr(evaluate_module, "InceptionFeatures", CountingFeatures)
    monkeypatch.delenv(CACHE_ENV, raising=False)
    CountingFeatures.seen = 0
    return CountingFeatures


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(6):
        synthetic_photo(index, SIZE, SIZE).save(folder / f"p{index}.png")
    return folder


def fid_of(folder: Path, **options) -> float:
    return evaluate(GrayBaseline(), folder, size=SIZE, metrics=["fid"], progress=False, **options).summary["fid"]


def test_second_evaluation_reads_the_reference_and_gives_the_same_fid(fake_inception, photos: Path) -> None:
    first = fid_of(photos)
    assert fake_inception.seen == 12  # 6 truths + 6 outputs
    paths = sorted(photos.iterdir())
    assert reference_path(reference_key(paths, SIZE, "fake-extractor")).is_file()
    fake_inception.seen = 0
    second = fid_of(photos)
    assert fake_inception.seen == 6  # the outputs only
    assert second == first and np.isfinite(first) and first > 0


def test_a_changed_photo_or_size_misses_the_cache(fake_inception, photos: Path) -> None:
    first = fid_of(photos)
    synthetic_photo(40, SIZE, SIZE).save(photos / "p0.png")
    os.utime(photos / "p0.png", ns=(1, 1))  # a different mtime even on a coarse clock
    fake_inception.seen = 0
    changed = fid_of(photos)
    assert fake_inception.seen == 12
    assert changed != first
    paths = sorted(photos.iterdir())
    assert reference_key(paths, SIZE, "x") != reference_key(paths, SIZE + 1, "x")
    assert reference_key(paths, SIZE, "x") != reference_key(paths, SIZE, "y")
    assert reference_key(paths, SIZE, "x") != reference_key(paths[1:], SIZE, "x")


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_the_cache_can_be_turned_off(fake_inception, photos: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    options = {"reference_cache": False} if how == "argument" else {}
    if how == "environment":
        monkeypatch.setenv(CACHE_ENV, "off")
    first = fid_of(photos, **options)
    fake_inception.seen = 0
    assert fid_of(photos, **options) == first
    assert fake_inception.seen == 12
    assert not reference_path(reference_key(sorted(photos.iterdir()), SIZE, "fake-extractor")).exists()


def test_a_damaged_cache_file_is_computed_again(fake_inception, photos: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = fid_of(photos)
    path = reference_path(reference_key(sorted(photos.iterdir()), SIZE, "fake-extractor"))
    path.write_bytes(b"not an npz file")
    fake_inception.seen = 0
    assert fid_of(photos) == first
    assert fake_inception.seen == 12
    assert "unreadable FID reference cache" in caplog.text
    assert load_reference(reference_key(sorted(photos.iterdir()), SIZE, "fake-extractor")) is not None  # saved anew


def test_statistics_round_trip_exactly() -> None:
    statistics = FeatureStatistics(FEATURE_DIM)
    statistics.update(np.random.default_rng(0).normal(size=(5, FEATURE_DIM)))
    save_reference("round-trip", statistics)
    loaded = load_reference("round-trip")
    assert loaded is not None and loaded.count == 5
    assert np.array_equal(loaded.total, statistics.total) and np.array_equal(loaded.outer, statistics.outer)
    assert load_reference("absent") is None
