"""Photo folders: formats, modes, EXIF, gray and broken files, the stable split, the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chromalab.data.augment import augment, training_augmentation
from chromalab.data.dataset import PhotoDataset
from chromalab.data.datamodule import PhotoDataModule
from chromalab.data.folder import in_validation_split, index_folder, list_images
from chromalab.data.images import BadImageError, is_grayscale, open_rgb, resize_center_crop
from tests.conftest import synthetic_photo


def test_lists_every_supported_format_recursively(tmp_path: Path) -> None:
    photo = synthetic_photo(0)
    for i, ext in enumerate(["jpg", "jpeg", "png", "tif", "tiff", "bmp", "webp"]):
        folder = tmp_path / f"level{i % 3}" / "deeper"
        folder.mkdir(parents=True, exist_ok=True)
        photo.save(folder / f"p{i}.{ext}")
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / ".hidden.jpg").write_bytes(b"")
    found = list_images(tmp_path)
    assert len(found) == 7
    for path in found:
        assert open_rgb(path).size == photo.size


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    photo = synthetic_photo(1, width=40, height=24)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    photo.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_rgb(tmp_path / "rotated.jpg").size == (24, 40)


def test_palette_rgba_cmyk_la_and_16_bit_become_8_bit_rgb(tmp_path: Path) -> None:
    photo = synthetic_photo(2)
    photo.quantize(16).save(tmp_path / "palette.png")
    palette = open_rgb(tmp_path / "palette.png")
    assert palette.mode == "RGB"
    assert np.abs(np.asarray(palette, int) - np.asarray(photo.quantize(16).convert("RGB"), int)).max() == 0

    rgba = photo.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited on white
    rgba.save(tmp_path / "rgba.png")
    assert np.asarray(open_rgb(tmp_path / "rgba.png")).min() == 255

    photo.convert("CMYK").save(tmp_path / "cmyk.jpg")
    cmyk = open_rgb(tmp_path / "cmyk.jpg")
    assert cmyk.mode == "RGB" and np.abs(np.asarray(cmyk, int) - np.asarray(photo, int)).mean() < 12

    Image.new("LA", (16, 16), (100, 255)).save(tmp_path / "la.png")
    assert np.asarray(open_rgb(tmp_path / "la.png")).tolist()[0][0] == [100, 100, 100]

    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    deep = np.asarray(open_rgb(tmp_path / "deep.png"))
    assert deep.dtype == np.uint8 and deep[..., 0].max() == 255 and deep[0, 0, 0] == 0
    # 16-bit values are scaled by the type's range (65535 -> 255), not clipped.
    np.testing.assert_allclose(deep[..., 0], np.round(ramp / 65535 * 255), atol=1)


def test_grayscale_detection() -> None:
    color = synthetic_photo(3)
    gray = color.convert("L").convert("RGB")
    rng = np.random.default_rng(0)
    noisy = np.clip(np.asarray(gray, float) + rng.normal(0, 1.0, (40, 48, 3)), 0, 255).astype(np.uint8)
    assert not is_grayscale(color)
    assert is_grayscale(gray)
    assert is_grayscale(Image.fromarray(noisy))  # JPEG-like chroma noise is still gray


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "empty file"),
        ("text.png", b"this is not an image", "not an image"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadImageError, match=reason) as info:
        open_rgb(tmp_path / name)
    assert "\n" not in str(info.value) and name in str(info.value)


def test_truncated_tiny_and_missing(tmp_path: Path) -> None:
    synthetic_photo(4, 64, 64).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match="truncated|corrupt"):
        open_rgb(tmp_path / "cut.jpg")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(BadImageError, match="too small"):
        open_rgb(tmp_path / "dot.png")
    with pytest.raises(BadImageError, match="no such file"):
        open_rgb(tmp_path / "missing.png")


def test_index_skips_gray_and_broken_and_reports_them(tmp_path: Path) -> None:
    for i in range(5):
        synthetic_photo(i).save(tmp_path / f"color{i}.png")
    synthetic_photo(9).convert("L").save(tmp_path / "gray.png")
    synthetic_photo(8).convert("L").convert("RGB").save(tmp_path / "gray-rgb.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    index = index_folder(tmp_path, workers=1, progress=False)
    assert len(index.files) == 5
    assert sorted(p.name for p in index.grayscale) == ["gray-rgb.jpg", "gray.png"]
    assert [p.name for p in index.unreadable] == ["broken.jpg"]
    assert "5 color photos" in index.summary() and "2 grayscale" in index.summary()
    # The second pass reuses the cached verdicts, even for the broken file.
    again = index_folder(tmp_path, workers=1, progress=False)
    assert again.files == index.files and again.unreadable == index.unreadable


def test_split_is_stable_when_files_are_added() -> None:
    names = [f"class{i % 7}/img{i}.jpg" for i in range(2000)]
    before = {n for n in names if in_validation_split(n, 0.1, seed=0)}
    more = names + [f"new/img{i}.jpg" for i in range(500)]
    after = {n for n in more if in_validation_split(n, 0.1, seed=0)}
    assert before == {n for n in after if not n.startswith("new/")}
    assert 0.08 < len(before) / len(names) < 0.12
    assert before != {n for n in names if in_validation_split(n, 0.1, seed=1)}


def test_dataset_items_and_decoded_cache(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i in range(3):
        synthetic_photo(i, 60, 40).save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    dataset = PhotoDataset(paths, size=32, cache=True)
    first = [dataset[i] for i in range(3)]
    assert first[0].shape == (3, 32, 32) and first[0].dtype == torch.uint8
    expected = np.array(resize_center_crop(open_rgb(paths[1]), 32))
    assert torch.equal(first[1], torch.from_numpy(expected).permute(2, 0, 1))
    # Later epochs (and a new dataset object, as in a new run) decode nothing: delete the sources.
    shutil.rmtree(folder)
    reopened = PhotoDataset(paths, size=32, cache=True)
    assert all(torch.equal(reopened[i], first[i]) for i in range(3))


def test_index_cache_writes_do_not_share_a_temporary_file(tmp_path: Path) -> None:
    # DDP ranks index the same folder at once; a fixed "<cache>.tmp" let one rank rename the
    # other's file away mid-write. Here a foreign object sits at that old fixed name.
    from chromalab.data.folder import cache_dir

    root = tmp_path / "photos"
    root.mkdir()
    for seed in range(3):
        synthetic_photo(seed).save(root / f"p{seed}.png")
    index_folder(root, progress=False)
    caches = {p for p in cache_dir().glob("index-*.json")}
    mine = [p for p in caches if str(root) in p.read_text()]
    assert len(mine) == 1
    mine[0].unlink()
    mine[0].with_suffix(".tmp").mkdir()  # an in-flight write of another process, say
    assert len(index_folder(root, progress=False).files) == 3
    assert str(root) in mine[0].read_text()


def test_dataset_replaces_a_file_that_broke_after_indexing(tmp_path: Path) -> None:
    paths = []
    for i in range(2):
        synthetic_photo(i).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    paths[0].write_bytes(b"broken now")
    dataset = PhotoDataset(paths, size=16)
    assert torch.equal(dataset[0], dataset[1])


def test_batch_augmentation_keeps_size_and_range() -> None:
    batch = torch.rand(4, 3, 32, 32)
    out = augment(batch, training_augmentation(32))
    assert out.shape == batch.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, batch)


def test_datamodule_splits_and_batches(photo_dir: Path) -> None:
    module = PhotoDataModule(photo_dir, size=24, batch_size=4, val_fraction=0.25, workers=0)
    module.setup()
    assert len(module.train_set) + len(module.val_set) == 12
    batch = next(iter(module.train_dataloader()))
    assert batch.shape == (4, 3, 24, 24) and batch.dtype == torch.uint8


def _training_order(module: PhotoDataModule) -> list[bytes]:
    module.setup()
    return [photo.numpy().tobytes() for batch in module.train_dataloader() for photo in batch]


def test_order_seed_changes_the_training_order_and_keeps_the_split(photo_dir: Path) -> None:
    def module(**seeds: int) -> PhotoDataModule:
        # batch 1: no last batch dropped, so every order holds every training photo
        return PhotoDataModule(photo_dir, size=24, batch_size=1, val_fraction=0.25, workers=0, **seeds)

    base, again, reordered = module(seed=0), module(seed=0), module(seed=0, order_seed=7)
    assert _training_order(base) == _training_order(again)  # seeded: the same order twice
    order = _training_order(base)
    assert _training_order(reordered) != order and sorted(_training_order(reordered)) == sorted(order)
    assert reordered.val_set.paths == base.val_set.paths and sorted(reordered.train_set.paths) == sorted(base.train_set.paths)
    assert module(seed=0, order_seed=0).order_seed == base.order_seed == 0


@pytest.mark.parametrize("width, height", [(150, 150), (150, 113), (113, 150), (640, 480), (97, 97)])
def test_center_crop_of_any_size_to_128(width: int, height: int) -> None:
    # 150 -> 128 once computed a crop of 150.00000000000003 pixels and a negative box offset,
    # which stopped `prepare` on the whole Intel scene set.
    ramp = np.tile((np.arange(width) * 255 // (width - 1)).astype(np.uint8), (height, 1))
    image = Image.fromarray(np.stack([ramp] * 3, axis=-1))
    out = resize_center_crop(image, 128)
    assert out.size == (128, 128)
    # The crop is centered: a horizontal ramp stays symmetric about the middle column's value.
    row = np.asarray(out)[64, :, 0].astype(int)
    assert abs(row[0] + row[-1] - 2 * row[64]) <= 3


def test_importing_chromalab_leaves_pillows_global_settings_alone() -> None:
    import subprocess
    import sys

    code = ("from PIL import Image, ImageFile; before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES); "
            "import chromalab, chromalab.data.images, chromalab.inference.colorize, chromalab.data.prepare; "
            "print(before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_the_size_limit_is_checked_per_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chromalab.data import images

    Image.new("L", (400, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 100_000)
    with pytest.raises(BadImageError, match=r"too large \(400x300, over 100,000 pixels\)"):
        images.open_rgb(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # a host's own, lower, Pillow limit warns...
    monkeypatch.setattr(images, "MAX_PIXELS", 200_000)
    assert images.open_rgb(tmp_path / "big.png").size == (400, 300)  # ...and chromalab's limit decides
