"""Metrics against independent references: scikit-image, closed forms, hand-computed cases."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from chromalab.evaluation import metrics as M
from chromalab.evaluation.fid import FeatureStatistics, fid_from_statistics, frechet_distance
from chromalab.evaluation.lpips import stlpips_available
from tests.conftest import synthetic_photo


def _pair(seed: int, height: int = 40, width: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic photo and a noisy, shifted-color version of it (HxWx3 uint8)."""
    rng = np.random.default_rng(seed)
    truth = np.asarray(synthetic_photo(seed, width, height))
    noisy = truth.astype(int) + rng.integers(-30, 31, truth.shape) + rng.integers(-10, 11, 3)
    return truth, np.clip(noisy, 0, 255).astype(np.uint8)


def _batch(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def test_psnr_matches_scikit_image() -> None:
    pairs = [_pair(seed) for seed in range(3)]
    ours = M.psnr(_batch(*(p[1] for p in pairs)), _batch(*(p[0] for p in pairs)))
    reference = [peak_signal_noise_ratio(t, o, data_range=255) for t, o in pairs]
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-10)


def test_psnr_of_identical_images_is_capped_not_infinite() -> None:
    truth, _ = _pair(0)
    assert M.psnr(_batch(truth), _batch(truth)).item() == M.PSNR_CAP_DB


@pytest.mark.parametrize("shape", [(40, 48), (33, 21)])
def test_rgb_ssim_matches_scikit_image(shape: tuple[int, int]) -> None:
    pairs = [_pair(seed, *shape) for seed in range(4, 10)]  # more than one SSIM_CHUNK
    ours = M.ssim(_batch(*(p[1] for p in pairs)), _batch(*(p[0] for p in pairs)), data_range=255.0)
    reference = [structural_similarity(t, o, channel_axis=2, data_range=255) for t, o in pairs]
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-9)


def test_float_ssim_on_ab_channels_matches_scikit_image() -> None:
    truth, noisy = _pair(6)
    lab_t, lab_o = rgb2lab(truth), rgb2lab(noisy)
    reference = structural_similarity(lab_t[..., 1:], lab_o[..., 1:], channel_axis=2, data_range=M.AB_DATA_RANGE)
    ours = M.ssim(torch.from_numpy(lab_o[..., 1:]).permute(2, 0, 1)[None],
                  torch.from_numpy(lab_t[..., 1:]).permute(2, 0, 1)[None], data_range=M.AB_DATA_RANGE)
    assert ours.item() == pytest.approx(reference, abs=1e-9)


def test_ciede2000_matches_scikit_image_including_neutral_and_hue_wrap() -> None:
    rng = np.random.default_rng(7)
    lab1 = np.stack([rng.uniform(0, 100, 500), rng.uniform(-100, 100, 500), rng.uniform(-100, 100, 500)], -1)
    lab2 = lab1 + rng.normal(0, 15, lab1.shape)
    # Edge cases: neutral colors (chroma 0) and hue angles on both sides of 0 / 2π.
    lab1[:4] = [[50, 0, 0], [50, 0, 0], [60, 10, -0.5], [40, -30, 1]]
    lab2[:4] = [[55, 0, 0], [50, 20, 20], [60, 10, 0.5], [40, -30, -1]]
    reference = deltaE_ciede2000(lab1, lab2)
    to_tensor = lambda a: torch.from_numpy(a.T.reshape(1, 3, 1, -1))  # noqa: E731
    ours = M.ciede2000(to_tensor(lab1), to_tensor(lab2)).flatten().numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_photo_lab_and_mean_delta_e_agree_with_scikit_image_pipeline() -> None:
    truth, noisy = _pair(8)
    ours = M.ciede2000(M.lab_of(_batch(truth)), M.lab_of(_batch(noisy))).mean().item()
    reference = deltaE_ciede2000(rgb2lab(truth), rgb2lab(noisy)).mean()
    assert ours == pytest.approx(reference, abs=1e-3)


def test_colorfulness_of_gray_is_zero_and_known_images_are_hand_checkable() -> None:
    gray = np.repeat(np.asarray(synthetic_photo(1).convert("L"))[..., None], 3, axis=2)
    assert M.colorfulness(_batch(gray)).item() == 0.0
    assert M.colorfulness(_batch(gray), signed=True).item() == 0.0
    # Half (255, 0, 0), half black: rg is 255 or 0 (mean 127.5, std 127.5); yb is 127.5 or 0
    # (mean 63.75, std 63.75). M = (1 + 0.3) * sqrt(127.5² + 63.75²) ≈ 185.31, either way.
    red_black = np.zeros((10, 20, 3), dtype=np.uint8)
    red_black[:, :10, 0] = 255
    expected = 1.3 * math.sqrt(127.5**2 + 63.75**2)
    assert expected == pytest.approx(185.31, abs=0.01)
    assert M.colorfulness(_batch(red_black)).item() == pytest.approx(expected, rel=1e-12)
    assert M.colorfulness(_batch(red_black), signed=True).item() == pytest.approx(expected, rel=1e-12)
    # Half red, half green: R - G is +255 / -255 and yb is 127.5 everywhere.
    # |.| variant: rg = 255 everywhere, no spread: M = 0.3 * sqrt(255² + 127.5²) ≈ 85.53.
    # Signed (the paper's): σrg = 255, μrg = 0, μyb = 127.5: M = 255 + 0.3 * 127.5 = 293.25.
    red_green = np.zeros((10, 20, 3), dtype=np.uint8)
    red_green[:, :10, 0] = 255
    red_green[:, 10:, 1] = 255
    assert M.colorfulness(_batch(red_green)).item() == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-12)
    assert M.colorfulness(_batch(red_green), signed=True).item() == pytest.approx(293.25, rel=1e-12)


def test_directions_and_objective() -> None:
    assert M.METRICS["fid"] == "lower" and M.METRICS["psnr"] == "higher"
    assert M.objective("psnr", 30.0) < M.objective("psnr", 20.0)
    assert M.objective("delta_colorfulness", -3.0) < M.objective("delta_colorfulness", 5.0)
    assert M.best_index("ciede2000", [12.0, 9.5, math.nan]) == 1
    assert M.best_index("delta_colorfulness", [-20.0, 4.0, -6.0]) == 1
    assert M.best_index("colorfulness_truth", [40.0, 40.0]) is None


# --- FID -----------------------------------------------------------------------------------


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    rng = np.random.default_rng(9)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    var1, var2 = rng.uniform(0.5, 2, 16), rng.uniform(0.5, 2, 16)
    # Commuting covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(v1) - sqrt(v2))².
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("samples", [10, 200])  # rank-deficient and full-rank covariances
def test_frechet_distance_matches_the_scipy_sqrtm_formula(samples: int) -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(samples, 32)) @ rng.normal(size=(32, 32))
    y = rng.gamma(2.0, size=(samples, 32)) @ rng.normal(size=(32, 32))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)


def test_streamed_statistics_equal_numpy_mean_and_cov() -> None:
    features = np.random.default_rng(10).normal(size=(101, 8)) * [1, 2, 3, 4, 5, 6, 7, 8]
    stats = FeatureStatistics(dim=8)
    for start in range(0, 101, 16):  # batches, as the evaluation loop feeds them
        stats.update(torch.from_numpy(features[start : start + 16]))
    np.testing.assert_allclose(stats.mean(), features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance(), np.cov(features, rowvar=False), rtol=1e-9, atol=1e-12)


def test_sampled_gaussians_give_fid_close_to_the_true_distance() -> None:
    rng = np.random.default_rng(11)
    a, b = FeatureStatistics(dim=4), FeatureStatistics(dim=4)
    a.update(rng.normal(0.0, 1.0, size=(20000, 4)))
    b.update(rng.normal(1.0, 2.0, size=(20000, 4)))
    # True value: 4 * 1² + 4 * (1 - 2)² = 8.
    assert fid_from_statistics(a, b) == pytest.approx(8.0, rel=0.03)
    assert math.isnan(fid_from_statistics(FeatureStatistics(dim=4), b))


# --- ST-LPIPS ------------------------------------------------------------------------------


@pytest.mark.skipif(not stlpips_available(), reason="stlpips-pytorch is not installed")
def test_lpips_scorer_equals_the_packages_forward_and_leaves_no_stand_ins() -> None:
    from chromalab.evaluation.lpips import LpipsScorer

    scorer = LpipsScorer(chunk=2)
    for name in ("torchvision", "IPython", "torchsummary"):
        module = sys.modules.get(name)
        assert module is None or "chromalab stand-in" not in (module.__doc__ or "")
    pairs = [_pair(seed, 32, 32) for seed in (12, 13, 14)]
    truth, output = _batch(*(p[0] for p in pairs)), _batch(*(p[1] for p in pairs))
    ours = scorer.distances(truth, {"model": output})["model"]
    with torch.inference_mode():
        reference = scorer.metric(output.float() / 127.5 - 1, truth.float() / 127.5 - 1).flatten()
    np.testing.assert_allclose(ours.numpy(), reference.double().numpy(), rtol=1e-5)
    assert (ours > 0).all()
    assert scorer.distances(truth, {"same": truth})["same"].abs().max().item() < 1e-6


def test_onnx_inception_features_match_torchscript() -> None:
    from chromalab.evaluation.fid import InceptionFeatures

    images = torch.randint(0, 256, (3, 3, 64, 80), dtype=torch.uint8)
    onnx = InceptionFeatures(backend="onnx")
    torchscript = InceptionFeatures(backend="torch")
    assert (onnx.backend, torchscript.backend) == ("onnx", "torch")
    a, b = onnx(images), torchscript(images)
    assert a.shape == b.shape == (3, 2048) and a.dtype == torch.float64
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_fid_backend_option_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from chromalab.errors import ChromalabError
    from chromalab.evaluation.fid import BACKEND_ENV, choose_backend

    monkeypatch.setenv(BACKEND_ENV, "tpu")
    with pytest.raises(ChromalabError, match="expected auto, onnx or torch"):
        choose_backend(torch.device("cpu"))
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert choose_backend(torch.device("cpu")) == "torch"
