"""chromalab prepare: grayscale rule, dropping, dedupe, resume, and SRC left untouched."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from chromalab.data import prepare as prepare_module
from chromalab.data.images import is_monochrome, monochrome_stats
from chromalab.data.prepare import PrepareOptions, plan_outputs, prepare
from chromalab.errors import ChromalabError
from tests.conftest import synthetic_photo

SATURATED = [(200, 30, 30), (40, 160, 40), (40, 60, 210), (230, 200, 20), (160, 40, 170)]


def gray_array(seed: int, width: int = 64, height: int = 48) -> np.ndarray:
    return np.asarray(synthetic_photo(seed, width, height).convert("L"), dtype=np.float64)


# --- The grayscale rule ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_gray_with_noise_or_toning_is_monochrome(seed: int) -> None:
    gray = gray_array(seed)
    rng = np.random.default_rng(seed)
    noisy = np.clip(gray[..., None] + rng.normal(0, 4, gray.shape + (3,)), 0, 255).astype(np.uint8)
    assert is_monochrome(Image.fromarray(noisy))  # per-channel noise of 4/255: JPEG-like chroma noise
    assert is_monochrome(Image.fromarray(np.repeat(gray[..., None], 3, 2).astype(np.uint8)))
    as_image = Image.fromarray(gray.astype(np.uint8))
    sepia = ImageOps.colorize(as_image, black=(40, 26, 13), white=(255, 240, 200))
    cyanotype = ImageOps.colorize(as_image, black=(10, 25, 60), white=(225, 240, 255))
    assert is_monochrome(sepia) and is_monochrome(cyanotype)
    residual, tint = monochrome_stats(sepia)
    assert residual < 5 and 10 < tint < 30  # toned, yet within the documented limits


@pytest.mark.parametrize("seed", range(5))
def test_gray_with_a_colored_patch_is_color(seed: int) -> None:
    gray = np.repeat(gray_array(seed)[..., None], 3, 2).astype(np.uint8)
    height, width = gray.shape[:2]
    rng = np.random.default_rng(seed)
    patch_h, patch_w = int(height * 0.32), int(width * 0.32)  # 10% of the area
    top, left = rng.integers(0, height - patch_h), rng.integers(0, width - patch_w)
    gray[top : top + patch_h, left : left + patch_w] = SATURATED[seed]
    assert not is_monochrome(Image.fromarray(gray))
    assert not is_monochrome(synthetic_photo(seed))


# --- A source folder with every kind of file ---------------------------------------------


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    for index in range(6):
        folder = root / ("a/deep" if index % 3 == 0 else "a" if index % 2 else "b")
        synthetic_photo(index, 48, 40).save(folder / f"photo{index}.png")
    synthetic_photo(7, 48, 40).save(root / "b" / "photo7.jpg", quality=90)
    shutil.copy(root / "a" / "photo1.png", root / "b" / "copy-of-1.png")  # a duplicate under another name
    Image.fromarray(np.array(synthetic_photo(1, 48, 40))).save(root / "b" / "resaved-1.png", compress_level=1)
    synthetic_photo(8, 20, 12).save(root / "b" / "tiny.png")  # shorter side 12 < min-size 16
    synthetic_photo(9, 48, 40).convert("L").save(root / "gray.png")
    (root / "b" / "empty.jpg").write_bytes(b"")
    data = (root / "a" / "photo1.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not a photo")
    return root


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_manifest(dst: Path) -> dict[str, dict[str, str]]:
    with open(dst / "manifest.csv") as handle:
        return {row["source"]: row for row in csv.DictReader(handle)}


OPTIONS = PrepareOptions(size=32, min_size=16, drop_gray=True, dedupe=True)


def test_prepare_drops_and_keeps_for_the_right_reasons(source: Path, tmp_path: Path) -> None:
    before = tree_digest(source)
    dst = tmp_path / "out"
    summary = prepare(source, dst, OPTIONS, workers=1, progress=False)
    assert tree_digest(source) == before  # SRC untouched: same bytes, same times

    manifest = read_manifest(dst)
    status = {name: row["status"] for name, row in manifest.items()}
    assert status == {
        "a/deep/photo0.png": "kept", "a/deep/photo3.png": "kept", "a/photo1.png": "kept",
        "a/photo5.png": "kept", "b/photo2.png": "kept", "b/photo4.png": "kept", "b/photo7.jpg": "kept",
        "b/copy-of-1.png": "duplicate", "b/resaved-1.png": "duplicate",
        "b/tiny.png": "too-small", "gray.png": "grayscale",
        "b/empty.jpg": "unreadable", "b/truncated.png": "unreadable",
    }
    # The first path in sorted order keeps the photo; the later copies name it.
    assert "a/photo1.png" in manifest["b/copy-of-1.png"]["detail"]
    assert manifest["b/empty.jpg"]["detail"].startswith("empty file")
    assert summary["counts"] == {"kept": 7, "unreadable": 2, "too-small": 1, "grayscale": 1,
                                 "duplicate": 2, "write-error": 0}
    assert json.loads((dst / "summary.json").read_text())["counts"] == summary["counts"]
    assert {p["path"] for p in summary["problems"]} == {"b/empty.jpg", "b/truncated.png"}
    outputs = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.jpg"))
    assert outputs == sorted(row["output"] for row in manifest.values() if row["output"])
    assert "a/deep/photo0.jpg" in outputs  # the tree is mirrored
    for output in outputs:
        assert Image.open(dst / output).size == (32, 32)
    assert (manifest["a/photo1.png"]["width"], manifest["a/photo1.png"]["height"]) == ("48", "40")


def test_parallel_run_writes_the_same_manifest(source: Path, tmp_path: Path) -> None:
    prepare(source, tmp_path / "one", OPTIONS, workers=1, progress=False)
    prepare(source, tmp_path / "two", OPTIONS, workers=2, progress=False)
    assert (tmp_path / "one" / "manifest.csv").read_text() == (tmp_path / "two" / "manifest.csv").read_text()


def test_resume_after_an_interruption(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dst = tmp_path / "out"
    real = prepare_module.examine_source
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while the fifth photo was read
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "examine_source", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(source, dst, OPTIONS, workers=1, progress=False)
    monkeypatch.setattr(prepare_module, "examine_source", real)
    finished = {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")}
    assert len(finished) == 4  # the four sources examined before the interruption
    assert not list(dst.rglob(".chromalab-*"))  # no half-written files
    assert not (dst / "manifest.csv").exists()

    summary = prepare(source, dst, OPTIONS, workers=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not rewritten
    assert summary["reused"] == 4 and summary["written"] == 3
    assert summary["counts"]["kept"] == 7 and len(read_manifest(dst)) == 13
    fresh = prepare(source, tmp_path / "fresh", OPTIONS, workers=1, progress=False)
    assert fresh["counts"] == summary["counts"]
    assert (tmp_path / "fresh" / "manifest.csv").read_text() == (dst / "manifest.csv").read_text()

    # A third run has nothing to do; changing a source redoes just that one.
    again = prepare(source, dst, OPTIONS, workers=1, progress=False)
    assert again["written"] == 0 and again["reused"] == 7
    synthetic_photo(30, 48, 40).save(source / "b" / "photo2.png")
    changed = prepare(source, dst, OPTIONS, workers=1, progress=False)
    assert changed["written"] == 1


def test_resume_follows_changed_filters(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    prepare(source, dst, PrepareOptions(size=32, min_size=16), workers=1, progress=False)
    assert (dst / "gray.jpg").is_file() and (dst / "b" / "copy-of-1.jpg").is_file()
    summary = prepare(source, dst, OPTIONS, workers=1, progress=False)
    assert not (dst / "gray.jpg").exists() and not (dst / "b" / "copy-of-1.jpg").exists()
    assert summary["removed"] == 3 and summary["written"] == 0
    # The original of two duplicates changes: the first copy now keeps the photo.
    synthetic_photo(31, 48, 40).save(source / "a" / "photo1.png")
    summary = prepare(source, dst, OPTIONS, workers=1, progress=False)
    manifest = read_manifest(dst)
    assert manifest["b/copy-of-1.png"]["status"] == "kept" and (dst / "b" / "copy-of-1.jpg").is_file()
    assert manifest["b/resaved-1.png"]["detail"] == "same pixels as b/copy-of-1.png"
    assert summary["written"] == 2  # the changed original and the promoted copy
    with pytest.raises(ChromalabError, match="prepared with size 32"):
        prepare(source, dst, PrepareOptions(size=48, min_size=16), workers=1, progress=False)


def test_refuses_to_write_inside_the_source(source: Path, tmp_path: Path) -> None:
    before = tree_digest(source)
    for bad in (source, source / "a" / "out"):
        with pytest.raises(ChromalabError, match="outside the source"):
            prepare(source, bad, OPTIONS, workers=1, progress=False)
    with pytest.raises(ChromalabError, match="must not contain"):
        prepare(source, source.parent, OPTIONS, workers=1, progress=False)
    assert tree_digest(source) == before


def test_crop_none_png_and_name_clashes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    synthetic_photo(1, 60, 40).save(src / "x.png")
    synthetic_photo(2, 60, 40).save(src / "x.jpg")
    assert plan_outputs(["x.jpg", "x.png"], ".png") == {"x.jpg": "x.png", "x.png": "x-png.png"}
    summary = prepare(src, tmp_path / "out", PrepareOptions(size=20, min_size=8, crop="none", format="png"),
                      workers=1, progress=False)
    assert summary["counts"]["kept"] == 2
    assert Image.open(tmp_path / "out" / "x.png").size == (30, 20)  # shorter side 20, aspect kept
    assert Image.open(tmp_path / "out" / "x-png.png").size == (30, 20)


def test_webp_outputs_follow_the_quality_option(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for seed in range(3):
        synthetic_photo(seed, 96, 80).save(src / f"p{seed}.png")
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        prepare(src, out, PrepareOptions(size=64, min_size=8, format="webp", quality=quality), workers=1,
                progress=False)
        files = sorted(out.glob("*.webp"))
        assert [f.name for f in files] == ["p0.webp", "p1.webp", "p2.webp"]
        with Image.open(files[0]) as image:
            assert image.format == "WEBP" and image.size == (64, 64)
        sizes[quality] = sum(f.stat().st_size for f in files)
    assert sizes[30] < sizes[95]
    # A folder made at one quality is not silently continued at another.
    with pytest.raises(ChromalabError, match="quality 30"):
        prepare(src, tmp_path / "q30", PrepareOptions(size=64, min_size=8, format="webp", quality=95), workers=1,
                progress=False)
    with pytest.raises(ChromalabError, match="--quality 95"):
        PrepareOptions(format="png", quality=95).validate()


def test_cli(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from chromalab.cli import main

    dst = tmp_path / "out"
    # The source holds an empty and a truncated photo: skipped, each named once, exit 1.
    assert main(["prepare", str(source), str(dst), "--size", "32", "--min-size", "16", "--dedupe",
                 "--workers", "1", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "duplicate" in captured.out and "manifest" in captured.out
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert any("empty.jpg: empty file" in line for line in errors) and any("truncated.png" in line for line in errors)
    assert main(["prepare", str(source), str(source / "x"), "--no-progress"]) == 2
    assert "outside the source" in capsys.readouterr().err


# --- Never a user's file ------------------------------------------------------------------


def test_refuses_a_non_empty_folder_it_did_not_make(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "photos-of-mine"
    dst.mkdir()
    (dst / "a").mkdir()
    mine = dst / "a" / "photo1.jpg"  # exactly where prepare would write a/photo1.png's output
    mine.write_bytes(b"my own photo")
    with pytest.raises(ChromalabError, match="not empty and not a folder chromalab prepare made"):
        prepare(source, dst, OPTIONS, workers=1, progress=False)
    assert mine.read_bytes() == b"my own photo" and sorted(p.name for p in dst.rglob("*")) == ["a", "photo1.jpg"]
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ChromalabError, match="is not a folder"):
        prepare(source, tmp_path / "a-file", OPTIONS, workers=1, progress=False)


def test_a_foreign_file_inside_its_own_folder_is_never_replaced_or_removed(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    prepare(source, dst, OPTIONS, workers=1, progress=False)
    # Foreign files at planned outputs: where a photo new in SRC goes, where a kept photo went
    # (replaced by hand), and where a dropped duplicate's output was removed.
    synthetic_photo(40, 48, 40).save(source / "b" / "new.png")
    new_output = dst / "b" / "new.jpg"
    new_output.write_bytes(b"placed by hand")
    kept_output = dst / "a" / "photo1.jpg"
    kept_output.unlink()
    kept_output.write_bytes(b"also by hand")
    duplicate_output = dst / "b" / "copy-of-1.jpg"
    duplicate_output.write_bytes(b"and this one")
    summary = prepare(source, dst, OPTIONS, workers=1, progress=False)
    assert new_output.read_bytes() == b"placed by hand"
    assert kept_output.read_bytes() == b"also by hand"
    assert duplicate_output.read_bytes() == b"and this one"
    manifest = read_manifest(dst)
    assert manifest["b/new.png"]["status"] == "write-error" and "exists" in manifest["b/new.png"]["detail"]
    assert summary["removed"] == 0
