"""Colorize: full resolution, L* kept, folders mirrored, and every kind of bad input handled."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

from chromalab import colorize, load_model
from chromalab.cli import main
from chromalab.inference.fullres import full_resolution_lightness, merge_full_resolution
from chromalab.inference.colorize import colorize_files
from tests.conftest import synthetic_photo


def lightness(image: Image.Image) -> np.ndarray:
    return skcolor.rgb2lab(np.asarray(image.convert("RGB")) / 255.0)[..., 0]


def test_python_api_keeps_size_and_lightness(tiny_model: Path) -> None:
    photo = synthetic_photo(5, width=101, height=67)  # odd sizes, not multiples of anything
    gray = photo.convert("L")
    result = colorize(gray, model=tiny_model)
    assert result.size == (101, 67) and result.mode == "RGB"
    assert np.abs(lightness(result) - lightness(gray)).mean() < 0.5
    # Color input is reduced to its luminance first: same result as its gray version,
    # up to 8-bit rounding of the gray image.
    from_color = colorize(photo, model=tiny_model)
    assert np.abs(lightness(from_color) - lightness(photo)).mean() < 0.5


def test_inference_is_deterministic(tiny_model: Path) -> None:
    colorizer = load_model(tiny_model)
    photo = synthetic_photo(6)
    first, second = colorizer.colorize(photo), colorizer.colorize(photo)
    assert np.array_equal(np.asarray(first), np.asarray(second))


def test_batched_equals_one_by_one(tiny_model: Path) -> None:
    colorizer = load_model(tiny_model)
    photos = [synthetic_photo(i, 40 + i, 30 + 2 * i) for i in range(3)]
    batched = colorizer.colorize_images(photos)
    single = [colorizer.colorize(p) for p in photos]
    for a, b in zip(batched, single):
        assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1


def test_merge_uses_full_resolution_lightness() -> None:
    photo = synthetic_photo(7, 80, 60)
    lightness_full = full_resolution_lightness(photo)
    merged = merge_full_resolution(lightness_full, torch.zeros(1, 2, 8, 8))
    # Zero chroma at any model size gives exactly the photo's gray (same L*), at full size.
    assert merged.shape == (60, 80, 3)
    assert np.abs(lightness(Image.fromarray(merged)) - lightness(photo)).mean() < 0.5
    assert np.abs(merged[..., 0].astype(int) - merged[..., 2]).max() <= 1


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_mirrors_folders_and_never_overwrites(tiny_model: Path, photo_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["colorize", str(photo_dir), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert code == 0 and "colorized 12 photo(s)" in stdout
    sources = sorted(p.relative_to(photo_dir) for p in photo_dir.rglob("*.*"))
    written = sorted(p.relative_to(out) for p in out.rglob("*.*"))
    assert written == sources  # same tree, same names, same formats
    for relative in sources:
        assert Image.open(out / relative).size == Image.open(photo_dir / relative).size
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}
    code, _, stderr = run_cli(["colorize", str(photo_dir), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert code == 1 and stderr.count("exists (use --overwrite") == 12
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}
    code, _, _ = run_cli(["colorize", str(photo_dir), "--model", str(tiny_model), "--out", str(out),
                          "--overwrite", "--format", "png"], capsys)
    assert code == 0


def test_cli_refuses_to_write_over_its_inputs(tiny_model: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    synthetic_photo(1).save(tmp_path / "keep.png")
    original = (tmp_path / "keep.png").read_bytes()
    code, _, stderr = run_cli(["colorize", str(tmp_path / "keep.png"), "--model", str(tiny_model),
                               "--out", str(tmp_path), "--overwrite"], capsys)
    assert code == 1 and "overwrite an input" in stderr
    assert (tmp_path / "keep.png").read_bytes() == original
    assert not list(tmp_path.glob(".chromalab-*"))  # no temporary files left behind


def test_cli_glob_inputs(tiny_model: Path, photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run_cli(["colorize", str(photo_dir / "a" / "*.png"), "--model", str(tiny_model),
                               "--out", str(tmp_path)], capsys)
    assert code == 0 and len(list(tmp_path.glob("*.png"))) == len(list((photo_dir / "a").glob("*.png")))


def write_bomb(path: Path) -> None:
    """A valid PNG header that claims 30000 x 30000 pixels (900 MP) with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))


def test_every_bad_input_gets_one_line_and_the_batch_goes_on(tiny_model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    synthetic_photo(0).save(inputs / "good.png")
    (inputs / "notes.jpg").write_text("not an image at all")
    synthetic_photo(1, 64, 64).save(inputs / "full.jpg")
    data = (inputs / "full.jpg").read_bytes()
    (inputs / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (inputs / "full.jpg").unlink()
    (inputs / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(inputs / "pixel.png")
    write_bomb(inputs / "bomb.png")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["colorize", str(inputs), str(tmp_path / "missing.jpg"), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert code == 1
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    expected = {
        "notes.jpg": "not an image",
        "truncated.jpg": "truncated",
        "empty.png": "empty file",
        "pixel.png": "too small",
        "bomb.png": "too large",
        "missing.jpg": "no such file",
    }
    for name, reason in expected.items():
        matching = [line for line in lines if name in line]
        assert len(matching) == 1 and reason in matching[0], (name, matching)
    assert len(lines) == len(expected)
    assert (out / "good.png").is_file() and "colorized 1 photo(s)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]


def test_unwritable_output_folder(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthetic_photo(0).save(tmp_path / "good.png")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should go")
    code, _, stderr = run_cli(["colorize", str(tmp_path / "good.png"), "--model", str(tiny_model),
                               "--out", str(blocker / "out")], capsys)
    assert code == 1 and "cannot create output folder" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthetic_photo(0).save(tmp_path / "good.png")
    code, _, stderr = run_cli(["colorize", str(tmp_path / "good.png"), "--model", str(tmp_path / "nope.safetensors"),
                               "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "no such model file" in stderr and len(stderr.strip().splitlines()) == 1


def test_a_models_own_saturation_scales_its_chroma(tiny_model: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    vivid = tmp_path / "vivid.safetensors"
    code, _, _ = run_cli(["export", "--model", str(tiny_model), "--format", "safetensors", "--saturation", "1.5",
                          "--out", str(vivid)], capsys)
    assert code == 0
    plain, scaled = load_model(tiny_model), load_model(vivid)
    assert (plain.saturation, scaled.saturation) == (1.0, 1.5)
    l_norm = torch.linspace(-1, 1, 32 * 32).reshape(1, 1, 32, 32)
    torch.testing.assert_close(scaled.predict_ab(l_norm), 1.5 * plain.predict_ab(l_norm))
    code, _, err = run_cli(["export", "--model", str(tiny_model), "--saturation", "0", "--out",
                            str(tmp_path / "x.safetensors"), "--format", "safetensors"], capsys)
    assert code == 2 and "--saturation 0.0: must be positive" in err and not (tmp_path / "x.safetensors").exists()


def test_colorizing_does_not_import_the_training_stack() -> None:
    """Lightning costs ~3 s of start-up, most of a folder's time for small photos; the
    colorize command and the Python API must not pull it in (chromalab.data is lazy)."""
    import subprocess
    import sys

    code = ("import sys, chromalab, chromalab.cli, chromalab.inference.colorize, chromalab.data.folder\n"
            "chromalab.cli.build_parser()\n"
            "from chromalab.data import list_images, open_rgb\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    # The lazy names still resolve (and only then bring in what they need).
    from chromalab.data import PhotoDataModule, index_folder

    assert PhotoDataModule.__name__ == "PhotoDataModule" and callable(index_folder)
    with pytest.raises(AttributeError):
        from chromalab import data

        data.no_such_name  # noqa: B018


def test_batches_end_at_their_pixel_budget_and_every_photo_is_written(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 thumbnails make one batch, but a batch of big scans ends at BATCH_PIXELS (memory);
    the pipelined loop still writes every good photo once and names the bad one."""
    from chromalab.inference import colorize as colorize_module
    from chromalab.inference.colorizer import Colorizer

    source = tmp_path / "in"
    source.mkdir()
    for index in range(7):
        synthetic_photo(index, 40, 30).save(source / f"p{index}.png")  # 1,200 pixels each
    (source / "p3.png").write_bytes(b"not a png")
    monkeypatch.setattr(colorize_module, "BATCH_PIXELS", 2_500)
    colorizer = Colorizer.load(tiny_model)
    batch_sizes: list[int] = []
    predict = colorizer.predict_photos
    monkeypatch.setattr(colorizer, "predict_photos",
                        lambda images, **kw: (batch_sizes.append(len(images)), predict(images, **kw))[1])
    progress: list[int] = []
    report = colorize_files(colorizer, [source], tmp_path / "out", batch_size=32, on_progress=progress.append)
    # Batches end at the third decoded photo's pixels (3,600 >= 2,500): p0-p2, then p3-p6,
    # where p3 fails to decode (no pixels), so the network sees 3 and 3 photos.
    assert batch_sizes == [3, 3]
    assert sorted(p.name for p in report.written) == [f"p{i}.png" for i in (0, 1, 2, 4, 5, 6)]
    assert list(report.failed) == [source / "p3.png"] and sum(progress) == 7
    for index in (0, 1, 2, 4, 5, 6):
        assert Image.open(tmp_path / "out" / f"p{index}.png").size == (40, 30)
