"""Creative controls (temperature, hue, saturation, reference), mood augmentation, samples."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import kornia
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

import chromalab
from chromalab.checkpoint import ModelSpec, save_network
from chromalab.cli import main
from chromalab.color import rgb_to_l_norm
from chromalab.errors import BadImageError, ChromalabError
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.controls import (
    AbStatistics,
    ColorControls,
    bradford_adaptation,
    fit_gamut,
    make_ab_transform,
    match_reference,
    monge_kantorovich_map,
    mood_shift,
    planckian_chromaticity,
    reference_statistics,
    rotate_hue,
)
from chromalab.inference.diversity import mean_pairwise_delta_e, sample_variants, sampling_mode
from chromalab.models.base import ColorizationNet
from chromalab.models.registry import create_model
from chromalab.training.config import TrainConfig
from chromalab.training.objective import objective_class
from tests.conftest import synthetic_photo


def lab_of(image: Image.Image) -> np.ndarray:
    """Independent reference conversion (scikit-image, float64)."""
    return rgb2lab(np.asarray(image, dtype=np.float64) / 255.0)


def mean_ab(image: Image.Image) -> np.ndarray:
    return lab_of(image)[..., 1:].reshape(-1, 2).mean(axis=0)


def angle_between(u: np.ndarray, v: np.ndarray) -> float:
    """Counter-clockwise angle from u to v in degrees, in (-180, 180]."""
    return math.degrees(math.remainder(math.atan2(v[1], v[0]) - math.atan2(u[1], u[0]), 2 * math.pi))


@pytest.fixture(scope="module")
def colorizer(tiny_model: Path) -> Colorizer:
    return Colorizer.load(tiny_model)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return synthetic_photo(5, width=64, height=48)


def colorize(colorizer: Colorizer, photo: Image.Image, **controls: object) -> Image.Image:
    transform = make_ab_transform(ColorControls(**controls))  # type: ignore[arg-type]
    return colorizer.colorize_images([photo], ab_transform=transform)[0]


def random_ab(seed: int = 0) -> torch.Tensor:
    """Normalized ab of moderate chroma (well inside the sRGB gamut at L* = 50)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 2, 16, 16, generator=generator) * 0.04 + torch.tensor([0.1, 0.05]).view(1, 2, 1, 1)


# --- definitions against published references ------------------------------------------------


def test_bradford_matches_the_published_d65_to_d50_matrix() -> None:
    # Bruce Lindbloom's Bradford D65 -> D50 matrix (the ICC one).
    published = torch.tensor([[1.0478112, 0.0228866, -0.0501270],
                              [0.0295424, 0.9904844, -0.0170491],
                              [-0.0092345, 0.0150436, 0.7521316]], dtype=torch.float64)
    d65, d50 = torch.tensor([0.95047, 1.0, 1.08883]), torch.tensor([0.96422, 1.0, 0.82521])
    assert torch.allclose(bradford_adaptation(d65, d50), published, atol=2e-4)


def test_planckian_locus_matches_known_chromaticities() -> None:
    assert planckian_chromaticity(2856) == pytest.approx((0.44757, 0.40745), abs=1e-3)  # CIE illuminant A
    assert planckian_chromaticity(10000) == pytest.approx((0.2807, 0.2883), abs=1e-3)


def test_monge_kantorovich_map_is_the_optimal_linear_map() -> None:
    source = AbStatistics(torch.zeros(2, dtype=torch.float64), torch.tensor([[0.04, 0.01], [0.01, 0.02]], dtype=torch.float64))
    target = AbStatistics(torch.zeros(2, dtype=torch.float64), torch.tensor([[0.01, -0.004], [-0.004, 0.03]], dtype=torch.float64))
    matrix = monge_kantorovich_map(source, target)
    assert torch.allclose(matrix, matrix.T, atol=1e-8)  # symmetric positive definite: a gradient map
    assert bool((torch.linalg.eigvalsh(matrix) > 0).all())
    covariance_floor = (0.5 / 110) ** 2 * torch.eye(2, dtype=torch.float64)  # regularizes the source
    moved = matrix @ (source.covariance + covariance_floor) @ matrix.T
    assert torch.allclose(moved, target.covariance, atol=1e-8)


# --- each control moves ab the documented way ----------------------------------------------------


def test_neutral_controls_make_no_transform() -> None:
    assert make_ab_transform(ColorControls()) is None
    assert make_ab_transform(ColorControls(hue=360.0)) is None
    assert make_ab_transform(None) is None


def test_hue_rotates_mean_ab_by_the_angle() -> None:
    ab = random_ab()
    out = make_ab_transform(ColorControls(hue=90.0))(torch.zeros(2, 1, 16, 16), ab)  # type: ignore[misc]
    before, after = ab.mean(dim=(0, 2, 3)).numpy(), out.mean(dim=(0, 2, 3)).numpy()
    assert angle_between(before, after) == pytest.approx(90.0, abs=1e-3)
    assert np.linalg.norm(after) == pytest.approx(np.linalg.norm(before), rel=1e-5)
    assert torch.allclose(rotate_hue(rotate_hue(ab, 30.0), -30.0), ab, atol=1e-6)


def test_saturation_scales_chroma() -> None:
    ab = random_ab(1)
    half = make_ab_transform(ColorControls(saturation=0.5))(torch.zeros(2, 1, 16, 16), ab)  # type: ignore[misc]
    assert half.norm(dim=1).mean() == pytest.approx(0.5 * float(ab.norm(dim=1).mean()), rel=1e-5)


def test_controls_on_photos_move_ab_and_keep_lightness(colorizer: Colorizer, photo: Image.Image) -> None:
    neutral = colorize(colorizer, photo)
    base = mean_ab(neutral)
    results = {
        "warm": colorize(colorizer, photo, temperature=0.5),
        "cool": colorize(colorizer, photo, temperature=-0.5),
        "hue": colorize(colorizer, photo, hue=90.0),
        "half": colorize(colorizer, photo, saturation=0.5),
        "gray": colorize(colorizer, photo, saturation=0.0),
        "double": colorize(colorizer, photo, saturation=2.0),
    }
    warm, cool = mean_ab(results["warm"]), mean_ab(results["cool"])
    assert warm[1] > base[1] + 5.0 and warm[0] > base[0]  # warmer: b* up, a* slightly up
    assert abs(warm[0] - base[0]) < abs(warm[1] - base[1])
    assert cool[1] < base[1] - 5.0
    assert angle_between(base, mean_ab(results["hue"])) == pytest.approx(90.0, abs=5.0)
    chroma = lambda image: np.hypot(*lab_of(image)[..., 1:].reshape(-1, 2).T).mean()  # noqa: E731
    assert chroma(results["half"]) == pytest.approx(0.5 * chroma(neutral), rel=0.1)
    gray = np.asarray(results["gray"], dtype=int)
    assert np.ptp(gray, axis=2).max() <= 1  # R = G = B (up to rounding)
    lightness = lab_of(photo)[..., 0]
    for name, image in results.items():
        assert np.abs(lab_of(image)[..., 0] - lightness).mean() < 0.5, name


def test_reference_moves_colors_toward_the_reference(colorizer: Colorizer, photo: Image.Image, tmp_path: Path) -> None:
    reference = Image.new("RGB", (40, 30))
    reference.paste((40, 90, 200), (0, 0, 20, 30))  # blues
    reference.paste((60, 160, 230), (20, 0, 40, 30))
    path = tmp_path / "reference.png"
    reference.save(path)
    target = mean_ab(reference)
    before = mean_ab(colorize(colorizer, photo))
    after_image = colorize(colorizer, photo, reference=path)
    after = mean_ab(after_image)
    assert np.linalg.norm(after - target) < 0.5 * np.linalg.norm(before - target)
    assert np.abs(lab_of(after_image)[..., 0] - lab_of(photo)[..., 0]).mean() < 0.5
    # Before gamut fitting the transfer is exact: the reference's own mean and covariance...
    wanted = reference_statistics(reference)
    spread = torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(2)) * 0.1
    stats = AbStatistics.of(match_reference(spread, wanted)[0])
    assert np.allclose(stats.mean.numpy() * 110, target, atol=0.5)
    assert torch.allclose(stats.covariance, wanted.covariance, rtol=0.03, atol=(0.5 / 110) ** 2)
    # ...except that a nearly gray output's spread is stretched at most 3x (no false rainbows).
    nearly_gray = spread * 0.01
    stats = AbStatistics.of(match_reference(nearly_gray, wanted)[0])
    assert np.allclose(stats.mean.numpy() * 110, target, atol=0.5)
    ratio = torch.linalg.eigvalsh(stats.covariance).max() / torch.linalg.eigvalsh(AbStatistics.of(nearly_gray[0]).covariance).max()
    assert float(ratio) <= 3.0**2 * 1.01


def test_out_of_gamut_colors_lose_chroma_not_lightness_or_hue() -> None:
    l_norm = torch.tensor([0.0, 0.0, 0.8]).view(1, 1, 1, 3)  # L* 50, 50, 90
    ab = torch.tensor([[0.1, 0.9, 0.6], [0.05, -0.9, -0.6]]).view(1, 2, 1, 3)  # in, out, out
    fitted = fit_gamut(l_norm, ab)
    assert torch.allclose(fitted[..., 0], ab[..., 0])  # in gamut: untouched
    lab = torch.cat([l_norm * 50 + 50, fitted * 110], dim=1)
    rgb = kornia.color.lab_to_rgb(lab, clip=False)
    assert float(rgb.min()) > -2e-3 and float(rgb.max()) < 1 + 2e-3  # now inside sRGB
    for pixel in (1, 2):
        scale = fitted[0, :, 0, pixel] / ab[0, :, 0, pixel]
        assert 0.1 < float(scale[0]) < 0.9 and float(scale[0]) == pytest.approx(float(scale[1]))  # same hue


def test_bad_controls_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ChromalabError, match="temperature"):
        make_ab_transform(ColorControls(temperature=2.0))
    with pytest.raises(ChromalabError, match="saturation"):
        make_ab_transform(ColorControls(saturation=-1.0))
    with pytest.raises(BadImageError, match="missing.png: no such file"):
        make_ab_transform(ColorControls(reference=tmp_path / "missing.png"))
    gray = tmp_path / "gray.png"
    synthetic_photo(1).convert("L").convert("RGB").save(gray)
    with pytest.raises(ChromalabError, match="grayscale"):
        make_ab_transform(ColorControls(reference=gray))


def test_python_api_and_cli_take_the_controls(tiny_model: Path, colorizer: Colorizer, photo: Image.Image,
                                              tmp_path: Path) -> None:
    gray = chromalab.colorize(photo, model=colorizer, saturation=0.0)
    assert np.ptp(np.asarray(gray, dtype=int), axis=2).max() <= 1
    warm = chromalab.colorize(photo, model=colorizer, temperature=1.0)
    assert mean_ab(warm)[1] > mean_ab(colorizer.colorize(photo))[1] + 5.0
    source = tmp_path / "photo.png"
    photo.save(source)
    for name, flags in (("plain", []), ("turned", ["--hue", "180"])):
        assert main(["colorize", str(source), "--model", str(tiny_model), "--out", str(tmp_path / name), *flags]) == 0
    plain, turned = (mean_ab(Image.open(tmp_path / name / "photo.png")) for name in ("plain", "turned"))
    assert angle_between(plain, turned) == pytest.approx(180.0, abs=5.0) or \
        angle_between(plain, turned) == pytest.approx(-180.0, abs=5.0)
    assert main(["colorize", str(source), "--model", str(tiny_model), "--temperature", "3"]) == 2


# --- training-time mood augmentation ------------------------------------------------------------


def make_objective(mood: bool) -> torch.nn.Module:
    config = TrainConfig.from_dict({"model": {"name": "unet-tiny"}, "data": {"size": 32, "mood_augment": mood}})
    return objective_class("regression")(config.to_dict())


def test_mood_augmentation_turns_target_hue_but_keeps_l() -> None:
    images = torch.stack([torch.from_numpy(np.asarray(synthetic_photo(i, 32, 32)).copy()).permute(2, 0, 1)
                          for i in range(8)])
    plain, moody = make_objective(False).train(), make_objective(True).train()
    torch.manual_seed(1)
    l_plain, target_plain, rgb = plain.prepare_batch(images)
    torch.manual_seed(1)  # the same crops and flips; the mood draws come after them
    l_moody, target_moody, _ = moody.prepare_batch(images)
    assert torch.equal(l_plain, l_moody)  # the model input is untouched
    assert torch.allclose(l_plain, rgb_to_l_norm(rgb))
    turned = [i for i in range(8) if not torch.allclose(target_plain[i], target_moody[i], atol=1e-4)]
    assert 1 <= len(turned) <= 7  # about half the photos are shifted
    for i in turned:
        turn = pixel_hue_turns(target_plain[i] * 110, target_moody[i] * 110)
        assert 0.5 < abs(float(np.median(turn))) <= 30.5
        assert np.ptp(turn) < 1.0  # one global rotation per photo
    # Validation batches are never shifted.
    assert torch.equal(moody.eval().prepare_batch(images)[1], plain.eval().prepare_batch(images)[1])


def pixel_hue_turns(ab_before: torch.Tensor, ab_after: torch.Tensor, min_chroma: float = 5.0) -> np.ndarray:
    """Per-pixel hue-angle change in degrees, where both colors have enough chroma to tell."""
    a0, b0 = ab_before.reshape(2, -1).double().numpy()
    a1, b1 = ab_after.reshape(2, -1).double().numpy()
    keep = (np.hypot(a0, b0) > min_chroma) & (np.hypot(a1, b1) > min_chroma)
    turn = np.degrees(np.arctan2(b1, a1) - np.arctan2(b0, a0))[keep]
    return (turn + 180.0) % 360.0 - 180.0


def test_mood_shift_rotates_hue_within_range_and_keeps_lightness() -> None:
    rgb = torch.stack([torch.from_numpy(np.asarray(synthetic_photo(i, 32, 32)).copy()).permute(2, 0, 1)
                       for i in range(4)]).float() / 255
    shifted = mood_shift(rgb, max_degrees=20.0, probability=1.0, generator=torch.Generator().manual_seed(0))
    for original, moved in zip(rgb, shifted):
        lab_a = rgb2lab(original.permute(1, 2, 0).numpy().astype(np.float64))
        lab_b = rgb2lab(moved.permute(1, 2, 0).numpy().astype(np.float64))
        assert np.abs(lab_a[..., 0] - lab_b[..., 0]).mean() < 0.1  # out-of-gamut colors lose chroma, not L*
        turn = pixel_hue_turns(torch.from_numpy(lab_a[..., 1:]).permute(2, 0, 1),
                               torch.from_numpy(lab_b[..., 1:]).permute(2, 0, 1))
        assert 0.0 < abs(float(np.median(turn))) <= 20.5 and np.ptp(turn) < 2.0


# --- diverse samples --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dropout_model(colorizer: Colorizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained tiny U-Net with dropout in every decoder step (dropout has no weights)."""
    spec = ModelSpec(name="unet-tiny", kwargs=colorizer.spec.kwargs | {"dropout": 0.5, "dropout_layers": 4}, size=colorizer.spec.size)
    net = spec.build()
    net.load_state_dict(colorizer.net.state_dict())
    return save_network(net.eval(), spec, tmp_path_factory.mktemp("dropout") / "dropout.safetensors")


def test_samples_on_a_dropout_model_writes_distinct_variants(dropout_model: Path, photo: Image.Image,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in" / "photo.png"
    source.parent.mkdir()
    photo.save(source)
    out = tmp_path / "out"
    assert main(["colorize", str(source), "--model", str(dropout_model), "--out", str(out), "--samples", "3"]) == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["photo-s0.png", "photo-s1.png", "photo-s2.png"]
    arrays = [np.asarray(Image.open(f), dtype=int) for f in files]
    assert all(np.abs(a - b).mean() > 0.1 for i, a in enumerate(arrays) for b in arrays[i + 1 :])
    assert "diversity" in capsys.readouterr().out
    variants = [Image.open(f) for f in files]
    assert mean_pairwise_delta_e(variants) > 0.1
    # Reproducible: seed k gives variant k again; and the dropout state is restored afterwards.
    colorizer = Colorizer.load(dropout_model)
    again = sample_variants(colorizer, [photo], 2)[0]
    assert np.array_equal(np.asarray(again[1]), np.asarray(variants[1]))
    assert not any(m.training for m in colorizer.net.modules())
    # An exported backend (ONNX) has its dropout frozen; sampling falls back to the network.
    exported = copy.deepcopy(colorizer.net).eval()
    frozen = Colorizer(colorizer.net, colorizer.spec, backend=lambda l_norm, **_: exported(l_norm))
    assert mean_pairwise_delta_e(sample_variants(frozen, [photo], 2)[0]) > 0.1


def test_samples_on_a_deterministic_model_is_a_one_line_error(tiny_model: Path, photo: Image.Image, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    photo.save(tmp_path / "photo.png")
    assert main(["colorize", str(tmp_path / "photo.png"), "--model", str(tiny_model), "--out",
                 str(tmp_path / "out"), "--samples", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "deterministic" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


class NoisyNet(ColorizationNet):
    """A minimal stochastic model: the U-Net's colors plus generator-drawn noise."""

    def __init__(self) -> None:
        super().__init__()
        self.base = create_model("unet-tiny", out_channels=2)

    def predict(self, l_norm: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(l_norm.shape[0], 2, 1, 1, generator=generator) * 0.2
        return self.base(l_norm) + noise


def test_samples_use_the_generator_of_stochastic_models(photo: Image.Image) -> None:
    net = NoisyNet().eval()
    spec = ModelSpec(name="unet-tiny", kwargs={"out_channels": 2}, size=32)
    assert sampling_mode(net) == "generator"
    colorizer = Colorizer(net, spec)
    first, second = sample_variants(colorizer, [photo], 3), sample_variants(colorizer, [photo], 3)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first[0], second[0]))
    assert mean_pairwise_delta_e(first[0]) > 1.0
