"""Color points: the file format and every bad case, propagation, the CLI, Python, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.evaluation.simulated_points import photo_rng, simulate_points
from chromalab.inference.colorizer import Colorizer, with_points
from chromalab.inference.points import (
    ColorPoint,
    check_inside,
    hex_to_ab,
    make_points,
    parse_point_flag,
    points_from_json,
    points_to_json,
    read_points_file,
)
from chromalab.inference.propagation import PointGuide, work_size
from tests.conftest import synthetic_photo

RED = "#c0392b"


def ab_of(image: Image.Image) -> np.ndarray:
    """(H, W, 2) a*b* by scikit-image (independent of chromalab's conversions)."""
    return rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)[..., 1:]


def two_region_photo(width: int = 96, height: int = 64) -> Image.Image:
    """Gray: a light left half (L ~ 75) and a dark right half (L ~ 30), a little texture."""
    rng = np.random.default_rng(0)
    pixels = np.where(np.arange(width)[None, :] < width // 2, 190, 70).astype(np.float64)
    pixels = np.broadcast_to(pixels, (height, width)) + rng.normal(0, 2, (height, width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


# --- the format ----------------------------------------------------------------------------


def test_a_points_file_round_trips(tmp_path: Path) -> None:
    text = '{"points": [{"x": 412, "y": 230, "color": "#B03A2E"}, {"x": 1.5, "y": 2, "color": "2e5cb0", "radius": 6}]}'
    path = tmp_path / "photo.json"
    path.write_text(text)
    points = read_points_file(path)
    assert points == [ColorPoint(412, 230, "#b03a2e"), ColorPoint(1.5, 2, "#2e5cb0", 6.0)]
    assert points_from_json(points_to_json(points), "again") == points
    assert json.loads(points_to_json(points))["points"][0] == {"x": 412, "y": 230, "color": "#b03a2e"}


def test_a_color_gives_its_cielab_chroma() -> None:
    expected = rgb2lab(np.array([[[0xb0, 0x3a, 0x2e]]]) / 255.0)[0, 0, 1:]
    assert hex_to_ab("#b03a2e") == pytest.approx(tuple(expected), abs=0.05)
    assert hex_to_ab("#808080") == pytest.approx((0.0, 0.0), abs=0.01)


@pytest.mark.parametrize(("text", "problem"), [
    ('{"points": [', "not valid JSON"),
    ('[1, 2]', 'expected {"points"'),
    ('{"dots": []}', 'expected {"points"'),
    ('{"points": [{"x": 1, "y": 2}]}', "point 1: missing color"),
    ('{"points": [{"x": 1, "y": 2, "color": "red"}]}', "point 1: color 'red' is not an sRGB hex color"),
    ('{"points": [{"x": 1, "y": 2, "color": "#12345"}]}', "is not an sRGB hex color"),
    ('{"points": [{"x": "1", "y": 2, "color": "#123456"}]}', "point 1: x '1' is not a number"),
    ('{"points": [{"x": 1, "y": true, "color": "#123456"}]}', "point 1: y True is not a number"),
    ('{"points": [{"x": 1, "y": 2, "color": "#123456", "radius": -1}]}', "radius -1 must be positive"),
    ('{"points": [{"x": 1, "y": 2, "color": "#123456", "size": 3}]}', "unknown key(s) size"),
    ('{"points": [{"x": 1, "y": 2, "color": "#123456"}, 7]}', "point 2: 7 is not a point"),
])
def test_every_bad_file_is_one_line_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ChromalabError) as caught:
        read_points_file(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_missing_and_unreadable_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ChromalabError, match="no such points file"):
        read_points_file(tmp_path / "nowhere.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ChromalabError, match="binary.json: cannot read it"):
        read_points_file(tmp_path / "binary.json")


def test_points_outside_the_photo_and_too_many_points() -> None:
    check_inside([ColorPoint(0, 0, RED), ColorPoint(95.5, 63, RED)], 96, 64, "p.json")
    with pytest.raises(ChromalabError, match=r"p.json: point 2 at \(96, 10\) is outside the 96x64 photo"):
        check_inside([ColorPoint(1, 1, RED), ColorPoint(96, 10, RED)], 96, 64, "p.json")
    with pytest.raises(ChromalabError, match="point 1 at \\(-1, 0\\)"):
        check_inside([ColorPoint(-1, 0, RED)], 96, 64, "p.json")
    with pytest.raises(ChromalabError, match="at most 500"):
        make_points([(1, 1, RED)] * 501, "many")


def test_the_point_flag() -> None:
    assert parse_point_flag("412,230,#b03a2e") == ColorPoint(412, 230, "#b03a2e")
    assert parse_point_flag("4, 5, #B03A2E, 3") == ColorPoint(4, 5, "#b03a2e", 3.0)
    for text, problem in [("412,230", "expected X,Y,#RRGGBB"), ("a,2,#b03a2e", "--point 'a,2,#b03a2e'"),
                          ("1,2,#b03a2", "not an sRGB hex color")]:
        with pytest.raises(ChromalabError, match=problem):
            parse_point_flag(text)


# --- propagation -----------------------------------------------------------------------------


def test_work_grid_keeps_the_aspect_and_never_upscales() -> None:
    assert work_size(4000, 3000) == (512, 384)
    assert work_size(300, 200) == (300, 200)


def test_a_point_colors_its_region_and_not_another_or_a_far_one(tiny_model: Path) -> None:
    colorizer = Colorizer.load(tiny_model)
    photo = two_region_photo(384, 96)  # light x < 192, dark from 192 (a red that fits its gamut)
    before = ab_of(colorizer.colorize(photo))
    after = ab_of(colorizer.colorize(photo, points=[(200, 48, RED)]))
    red = np.array(hex_to_ab(RED))
    near = after[40:56, 196:212].mean(axis=(0, 1))
    assert np.linalg.norm(near - red) < 5  # the region around the point takes its color
    assert np.linalg.norm(before[40:56, 196:212].mean(axis=(0, 1)) - red) > 25  # it did not have it before
    # The light half right beside the point (other lightness: another region) barely changes ...
    assert np.abs(after[40:56, 172:188] - before[40:56, 172:188]).mean() < 3
    # ... and neither does the far end of the point's own region (over 5 fall-offs away).
    assert np.abs(after[:, 360:] - before[:, 360:]).mean() < 0.5


def test_without_points_nothing_changes(tiny_model: Path) -> None:
    colorizer = Colorizer.load(tiny_model)
    photo = synthetic_photo(3).convert("L")
    ab = colorizer.predict_photos([photo])[0]
    assert with_points(photo, ab, []) is ab
    assert np.array_equal(np.asarray(colorizer.colorize(photo)), np.asarray(colorizer.colorize(photo, points=[])))


def test_two_points_in_one_region_each_keep_their_own_color(tiny_model: Path) -> None:
    colorizer = Colorizer.load(tiny_model)
    photo = two_region_photo(512, 128)  # both points in the dark half, where both colors fit
    blue = "#2e5cb0"
    out = ab_of(colorizer.colorize(photo, points=[(270, 20, RED), (400, 100, blue)]))
    assert np.linalg.norm(out[18:23, 268:273].mean(axis=(0, 1)) - hex_to_ab(RED)) < 8
    assert np.linalg.norm(out[98:103, 398:403].mean(axis=(0, 1)) - hex_to_ab(blue)) < 8


def test_the_guide_is_reused_and_gives_the_same_result(tiny_model: Path) -> None:
    colorizer = Colorizer.load(tiny_model)
    photo = two_region_photo()
    ab = colorizer.predict_photos([photo])[0]
    points = [ColorPoint(10, 10, RED)]
    guide = PointGuide(photo)
    assert torch.equal(guide.spread(ab, points), with_points(photo, ab, points))


def test_python_api_takes_points_and_checks_them(tiny_model: Path) -> None:
    from chromalab import colorize

    photo = two_region_photo()
    colored = colorize(photo, model=str(tiny_model), points=[(20, 30, RED), {"x": 70, "y": 30, "color": "#2e5cb0"}])
    assert colored.size == photo.size
    with pytest.raises(ChromalabError, match=r"points: point 1 at \(200, 30\) is outside the 96x64 photo"):
        colorize(photo, model=str(tiny_model), points=[(200, 30, RED)])
    colorizer = Colorizer.load(tiny_model)
    with pytest.raises(ChromalabError, match="2 point lists for 1 photos"):
        colorizer.colorize_images([photo], points=[[], []])


# --- the command line ------------------------------------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


@pytest.fixture()
def gray_folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    two_region_photo().save(root / "left.png")
    two_region_photo().save(root / "sub" / "nested.png")
    two_region_photo().save(root / "sub" / "plain.png")
    return root


def test_cli_folder_with_and_without_point_files(tiny_model: Path, gray_folder: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    points = tmp_path / "points"
    (points / "sub").mkdir(parents=True)
    (points / "sub" / "nested.json").write_text(json.dumps({"points": [{"x": 70, "y": 30, "color": RED}]}))
    (points / "left.json").write_text(json.dumps({"points": [{"x": 70, "y": 30, "color": RED}]}))
    plain_out, pointed_out = tmp_path / "plain", tmp_path / "pointed"
    assert run_cli(["colorize", str(gray_folder), "--model", str(tiny_model), "--out", str(plain_out)], capsys)[0] == 0
    assert run_cli(["colorize", str(gray_folder), "--model", str(tiny_model), "--out", str(pointed_out),
                    "--points", str(points)], capsys)[0] == 0
    red = np.array(hex_to_ab(RED))
    for name in ("left.png", "sub/nested.png"):  # a mirrored file, and a plain <stem>.json
        region = ab_of(Image.open(pointed_out / name))[25:35, 65:75].mean(axis=(0, 1))
        assert np.linalg.norm(region - red) < 8, name
    # A photo without a points file is colorized as without --points.
    assert np.array_equal(np.asarray(Image.open(plain_out / "sub/plain.png")),
                          np.asarray(Image.open(pointed_out / "sub/plain.png")))


def test_cli_one_photo_with_point_flags_and_a_points_file(tiny_model: Path, gray_folder: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    photo = gray_folder / "left.png"
    by_flag, by_file = tmp_path / "flag", tmp_path / "file"
    assert run_cli(["colorize", str(photo), "--model", str(tiny_model), "--out", str(by_flag),
                    "--point", f"20,30,{RED}"], capsys)[0] == 0
    (tmp_path / "left.json").write_text(points_to_json([ColorPoint(20, 30, RED)]))
    assert run_cli(["colorize", str(photo), "--model", str(tiny_model), "--out", str(by_file),
                    "--points", str(tmp_path / "left.json")], capsys)[0] == 0
    assert np.array_equal(np.asarray(Image.open(by_flag / "left.png")), np.asarray(Image.open(by_file / "left.png")))


@pytest.mark.parametrize(("extra", "problem"), [
    (["--point", "500,30,#c0392b"], "--point (for {photo}): point 1 at (500, 30) is outside the 96x64 photo"),
    (["--point", "5,30,#c0392"], "--point '5,30,#c0392': color '#c0392' is not an sRGB hex color like #b03a2e"),
    (["--points", "{bad}"], "{bad}: not valid JSON"),
    (["--points", "{outside}"], "{outside} (for {photo}): point 1 at (10, 64) is outside the 96x64 photo"),
    (["--points", "{nowhere}"], "--points {nowhere}: no such file or folder"),
    (["--point", "5,5,#c0392b", "--points", "{bad}"], "give --point or --points, not both"),
    (["--samples", "2", "--point", "5,5,#c0392b"], "--samples and color points do not go together"),
])
def test_cli_bad_points_are_one_line_exit_2_before_any_photo_is_written(
    tiny_model: Path, gray_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], problem: str,
) -> None:
    photo = gray_folder / "left.png"
    files = {"bad": tmp_path / "bad.json", "outside": tmp_path / "outside.json", "nowhere": tmp_path / "nowhere.json"}
    files["bad"].write_text('{"points": [{"x": 1,')
    files["outside"].write_text(json.dumps({"points": [{"x": 10, "y": 64, "color": RED}]}))
    out = tmp_path / "out"
    args = [a.format(**files) for a in extra]
    code, error = run_cli(["colorize", str(photo), "--model", str(tiny_model), "--out", str(out), *args], capsys)
    assert code == 2 and "\n" not in error
    assert error.startswith("chromalab colorize: error: " + problem.format(photo=photo, **files))
    assert not out.exists()


def test_cli_a_bad_file_in_a_points_folder_stops_the_whole_folder(
    tiny_model: Path, gray_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    points = tmp_path / "points"
    points.mkdir()
    (points / "nested.json").write_text(json.dumps({"points": [{"x": 1, "y": 1, "color": "blue"}]}))
    out = tmp_path / "out"
    code, error = run_cli(["colorize", str(gray_folder), "--model", str(tiny_model), "--out", str(out),
                           "--points", str(points)], capsys)
    assert code == 2 and "nested.json: point 1: color 'blue'" in error and not out.exists()
    code, error = run_cli(["colorize", str(gray_folder), "--model", str(tiny_model), "--out", str(out),
                           "--point", "1,1,#c0392b"], capsys)
    assert code == 2 and "--point colors one photo; 3 were given" in error and not out.exists()


# --- evaluation --------------------------------------------------------------------------------


def test_simulated_points_are_seeded_nested_and_the_truths_3x3_mean() -> None:
    truth = synthetic_photo(5, 40, 30)
    first = simulate_points(truth, 10, photo_rng("a/photo.jpg"))
    assert first == simulate_points(truth, 10, photo_rng("b/photo.jpg"))  # by name, not by folder
    assert simulate_points(truth, 4, photo_rng("a/photo.jpg")) == first[:4]  # nested sets
    assert first != simulate_points(truth, 10, photo_rng("other.jpg"))
    pixels = np.asarray(truth, dtype=np.float64)
    for point in first:
        x, y = int(point.x), int(point.y)
        assert 0 <= x < 40 and 0 <= y < 30
        mean = pixels[max(0, y - 1):y + 2, max(0, x - 1):x + 2].reshape(-1, 3).mean(axis=0)
        assert point.color == "#" + "".join(f"{int(round(c)):02x}" for c in mean)


def test_evaluate_with_points_scores_point_guided_colorization(tiny_model: Path, photo_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from chromalab.evaluation.baselines import make_baselines
    from chromalab.evaluation.evaluate import evaluate_models

    colorizers = {"tiny": Colorizer.load(tiny_model), **make_baselines(["gray"])}
    options = dict(size=32, metrics=["psnr", "ciede2000"], progress=False, reference_cache=False)
    plain = {r.name: r for r in evaluate_models(colorizers, photo_dir, **options)}
    pointed = {r.name: r for r in evaluate_models(colorizers, photo_dir, points=20, **options)}
    for name in colorizers:  # the truth's own colors, spread: closer to the truth for every model
        assert pointed[name].summary["ciede2000"] < 0.8 * plain[name].summary["ciede2000"], name
        assert pointed[name].summary["psnr"] > plain[name].summary["psnr"] + 1, name
    assert pointed["tiny"].settings["points"] == 20 and "20 color point(s)" in pointed["tiny"].settings["protocol"]
    assert all(len(p) == 20 for p in pointed["tiny"].samples.points)
    # The command: --points N, one report.
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(photo_dir), "--size", "32",
                 "--metrics", "psnr,ciede2000", "--points", "5", "--no-fid-cache", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(photo_dir), "--points", "-1",
                 "--out", str(tmp_path / "never")]) == 2
