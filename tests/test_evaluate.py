"""The evaluation loop, baselines, reports and the evaluate / compare commands (tiny photos)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from chromalab.checkpoint import ModelSpec, load_network, save_network
from chromalab.cli import main
from chromalab.color import lab_to_rgb, rgb_to_lab
from chromalab.evaluation import METRICS, GrayBaseline, evaluate, evaluate_models
from chromalab.evaluation.compare import read_training_curves
from chromalab.evaluation.evaluate import collect_paths, gray_version, load_photo, to_image, to_tensor
from chromalab.evaluation.lpips import stlpips_available
from chromalab.inference.colorizer import Colorizer
from tests.conftest import synthetic_photo

CHEAP = ["psnr", "ssim", "ssim_ab", "ciede2000", "colorfulness", "colorfulness_truth",
         "delta_colorfulness", "delta_l"]
SIZE = 32


class TruthColorizer:
    """A test double that knows the answers: the true a*b* of each photo, on the input's L*."""

    name = "perfect"

    def __init__(self, truths: Sequence[Image.Image], noise: float = 0.0) -> None:
        self.by_gray = {to_image(gray_version(to_tensor(t)[None])[0]).tobytes(): t for t in truths}
        self.noise = noise  # > 0: return the truth itself plus Gaussian noise of this sigma
        self.rng = np.random.default_rng(0)

    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None, **_: Any) -> list[Image.Image]:
        results = []
        for image in images:
            truth = self.by_gray[image.tobytes()]
            if self.noise:
                array = np.asarray(truth, dtype=np.float64) + self.rng.normal(0, self.noise, (truth.height, truth.width, 3))
                results.append(Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8)))
                continue
            lightness = rgb_to_lab(to_tensor(image)[None].float() / 255)[:, :1]
            ab = rgb_to_lab(to_tensor(truth)[None].float() / 255)[:, 1:]
            rgb = lab_to_rgb(torch.cat([lightness, ab], dim=1))
            results.append(to_image(rgb[0].mul(255).round().clamp(0, 255).to(torch.uint8)))
        return results


class ZeroAbNet(nn.Module):
    """A network that always predicts a* = b* = 0: a real Colorizer that returns gray."""

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return torch.zeros(l_norm.shape[0], 2, *l_norm.shape[-2:])

    def predict(self, l_norm: torch.Tensor, **_: Any) -> torch.Tensor:
        return self(l_norm)


def _truths(folder: Path) -> list[Image.Image]:
    return [load_photo(path, SIZE) for path in collect_paths(folder)]


def test_perfect_colorizer_scores_near_perfect_and_beats_gray(photo_dir: Path) -> None:
    metrics = CHEAP + (["lpips"] if stlpips_available() else [])
    perfect, gray = evaluate_models({"perfect": TruthColorizer(_truths(photo_dir)), "gray": GrayBaseline()},
                                    photo_dir, size=SIZE, metrics=metrics, progress=False)
    assert perfect.summary["ciede2000"] < 0.5
    assert perfect.summary["psnr"] > 40
    assert perfect.summary["ssim"] > 0.99 and perfect.summary["ssim_ab"] > 0.99
    assert abs(perfect.summary["delta_colorfulness"]) < 1.0
    assert perfect.summary["delta_l"] < 0.5
    assert gray.summary["colorfulness"] == 0.0 and gray.summary["delta_l"] == 0.0
    assert gray.summary["delta_colorfulness"] == pytest.approx(-gray.summary["colorfulness_truth"])
    assert gray.summary["ciede2000"] > 5 * perfect.summary["ciede2000"]
    if "lpips" in metrics:
        assert perfect.summary["lpips"] < gray.summary["lpips"]
    assert len(perfect.per_image) == 12 and {"path", "psnr", "ciede2000"} <= set(perfect.per_image[0])


def test_a_model_returning_gray_reproduces_the_gray_baseline_exactly(photo_dir: Path) -> None:
    zero = Colorizer(ZeroAbNet(), ModelSpec(name="zero-ab", color_space="lab", size=SIZE))
    gray, model = evaluate_models({"gray": GrayBaseline(), "zero": zero}, photo_dir, size=SIZE,
                                  metrics=CHEAP, progress=False)
    assert {k: v for k, v in model.summary.items() if k != "images_per_s"} == \
           {k: v for k, v in gray.summary.items() if k != "images_per_s"}
    assert model.per_image == gray.per_image


class CallLog(GrayBaseline):
    """Gray outputs, and a shared list of which model ran when (to check the timing order)."""

    def __init__(self, label: str, calls: list[str]) -> None:
        super().__init__()
        self.label, self.calls = label, calls

    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None, **kwargs: Any) -> list[Image.Image]:
        self.calls.append(self.label)
        return super().colorize_images(images, size, **kwargs)


def test_models_take_turns_at_running_first_in_each_batch(photo_dir: Path) -> None:
    # The first model after the previous batch's Inception pass runs on cold caches; rotating
    # the order keeps that cost from landing on one model's images_per_s.
    calls: list[str] = []
    models = {label: CallLog(label, calls) for label in ("a", "b", "c")}
    results = evaluate_models(models, photo_dir, size=SIZE, metrics=["psnr"], batch_size=2, progress=False)
    batches = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert len(batches) == 6  # 12 photos, 2 per batch
    assert [batch[0] for batch in batches] == ["a", "b", "c", "a", "b", "c"]
    assert all(sorted(batch) == ["a", "b", "c"] for batch in batches)
    assert [r.name for r in results] == ["a", "b", "c"]  # the report keeps the given order
    assert all(len(r.per_image) == 12 for r in results)


def test_gray_input_has_the_photos_lightness_and_no_color() -> None:
    truth = to_tensor(synthetic_photo(3))[None]
    gray = gray_version(truth)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    lightness = lambda x: rgb_to_lab(x.float() / 255)[:, 0]  # noqa: E731
    assert (lightness(gray) - lightness(truth)).abs().max() < 0.5  # one uint8 step of gray


def test_full_resolution_and_unreadable_photos(tmp_path: Path) -> None:
    for index in range(3):
        synthetic_photo(index, 50, 36).save(tmp_path / f"p{index}.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = evaluate(GrayBaseline(), tmp_path, size=0, metrics=["psnr"], progress=False)
    assert result.settings["images"] == 3
    assert list(result.settings["skipped"]) == [str(tmp_path / "broken.jpg")]
    assert {(row["width"], row["height"]) for row in result.per_image} == {(50, 36)}
    assert set(result.summary) == {"psnr", "images_per_s"}


@pytest.mark.slow
def test_fid_end_to_end_with_the_real_inception(photo_dir: Path) -> None:
    # 4 photos x 3 sets = 12 Inception passes at 299 px: the suite's only heavy network.
    # (FID of a set against itself is checked on Gaussian features in test_metrics.)
    paths = collect_paths(photo_dir)[:4]
    truths = [load_photo(path, SIZE) for path in paths]
    colorizers = {"noisy": TruthColorizer(truths, noise=4.0), "gray": GrayBaseline()}
    results = {r.name: r.summary["fid"] for r in evaluate_models(
        colorizers, paths, size=SIZE, metrics=["fid"], progress=False)}
    assert results["gray"] > results["noisy"] > 0


# --- reports and commands ------------------------------------------------------------------


def test_evaluate_cli_writes_all_four_outputs(tiny_model: Path, photo_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model), "--data", str(photo_dir), "--size", str(SIZE),
            "--metrics", "psnr,ciede2000,colorfulness,delta_l", "--baselines", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert [m["name"] for m in report["models"]] == ["tiny", "gray", "mean-ab"]
    assert report["models"][1]["summary"]["colorfulness"] == 0.0
    assert report["metrics"]["ciede2000"]["better"] == "lower"
    table = (out / "metrics.md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == 4  # header + 3 models
    with (out / "per_image.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 36 and float(rows[0]["psnr"]) > 0
    sheet = Image.open(out / "samples.png")
    assert sheet.width > 5 * SIZE and sheet.height > 8 * SIZE  # 5 columns, 8 sample rows
    stamp = (out / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 2  # never replaces a report without --overwrite
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--overwrite" in error
    assert (out / "metrics.json").stat().st_mtime_ns == stamp


def test_evaluate_cli_reports_a_missing_folder_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", "gray", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no such file or folder" in error


def _bold_column(table: str, column: str) -> list[bool]:
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    index = next(i for i, name in enumerate(header) if name.split(" ")[0] == column)
    return [line.strip("|").split("|")[index].strip().startswith("**") for line in lines[1:]]


def test_compare_two_models_writes_table_grid_curves_and_bolds_the_best(
        tiny_model: Path, photo_dir: Path, tmp_path: Path) -> None:
    net, spec = load_network(tiny_model)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(0.5)
    other = save_network(net, spec, tmp_path / "halved.safetensors")  # a plain file: no logs
    out = tmp_path / "cmp"
    assert main(["compare", str(tiny_model), str(other), "--data", str(photo_dir), "--size", str(SIZE),
                 "--metrics", "psnr,ciede2000,colorfulness", "--out", str(out)]) == 0
    for name in ("metrics.md", "metrics.csv", "metrics.json", "per_image.csv", "grid.png", "curves.png"):
        assert (out / name).is_file(), name
    with (out / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["model"] for row in rows] == ["tiny", "halved"]
    table = (out / "metrics.md").read_text()
    for column, pick in (("psnr", max), ("ciede2000", min), ("colorfulness", max)):
        values = [float(row[column]) for row in rows]
        expected = [value == pick(values) for value in values]
        assert _bold_column(table, column) == expected, column
    assert METRICS["ciede2000"] == "lower"
    grid = Image.open(out / "grid.png")
    assert grid.width > 4 * SIZE  # gray | tiny | halved | truth


def test_training_curves_are_read_from_lightning_csv_logs(tiny_model: Path, tmp_path: Path) -> None:
    steps, losses = read_training_curves(tiny_model)["val"]  # a real run: 2 epochs, val each
    assert len(steps) == len(losses) == 2 and all(np.isfinite(losses))
    # Lightning's CSVLogger writes sparse rows (train and val values on different lines).
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "metrics.csv").write_text(
        "epoch,img/s,lr-AdamW,step,train/pixel,train/total,val/loss\n"
        ",,0.0001,49,,,\n"
        "0,25.0,,49,0.30,0.31,\n"
        "0,,,60,,,0.28\n"
        "1,26.0,,99,0.20,0.21,\n"
        "1,,,120,,,0.22\n"
    )
    curves = read_training_curves(run)
    assert curves["train"] == ([49.0, 99.0], [0.31, 0.21])  # train/total, not train/pixel
    assert curves["val"] == ([60.0, 120.0], [0.28, 0.22])


def test_sheet_labels_too_wide_for_a_column_break_in_two_lines_at_a_dash() -> None:
    from PIL import Image, ImageDraw

    from chromalab.evaluation.report import _font, _label_lines, sheet_header

    font = _font(14)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = 64  # a study's 64 px column
    assert _label_lines(draw, "unet", width, font) == ["unet"]
    assert _label_lines(draw, "pixel-ycbcr", width, font) == ["pixel-", "ycbcr"]
    assert _label_lines(draw, "multiscale-ycbcr", width, font) == ["multisca…", "ycbcr"]  # at 14 px
    unbroken = _label_lines(draw, "averyveryverylongname", width, font)
    assert len(unbroken) == 1 and unbroken[0].endswith("…") and draw.textlength(unbroken[0], font=font) <= width
    for label in ("patch-ycbcr", "multiscale-lab", "pix2pix_with_a_long_tail", "a-b"):
        lines = _label_lines(draw, label, width, font)
        assert all(draw.textlength(line, font=font) <= width for line in lines)
        assert len(lines) <= 2 and label.startswith(lines[0].rstrip("…"))
        assert len(lines) == 1 or lines[1].rstrip("…") in label[len(lines[0].rstrip("…")):]

    one_line = sheet_header(["gray input", "unet", "truth"], 96)
    two_lines = sheet_header(["gray input", "multiscale-ycbcr", "truth"], 64)
    assert one_line.size == (3 * (96 + 4) + 4, 24) and two_lines.height == 40
    # The header takes smaller type (13 px here) rather than cut "multiscale-" short.
    assert _label_lines(draw, "multiscale-ycbcr", width, _font(13)) == ["multiscale-", "ycbcr"]
