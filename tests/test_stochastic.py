"""The stochastic and probabilistic machinery of the VAE, diffusion and classification models,
checked against independent references (brute force, closed forms, exact oracles)."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chromalab.color import normalize_ab, rgb_to_lab
from chromalab.errors import ChromalabError
from chromalab.models import create_model
from chromalab.models.diffusion import PREDICTION_TYPES, SAMPLERS
from chromalab.models.classify import (
    GAMUT_ROWS,
    GRID,
    NUM_BINS,
    annealed_mean,
    bin_centers,
    measure_gamut_cells,
    nearest_bin,
    soft_encode,
)
from chromalab.training.classification import (
    ClassificationObjective,
    rebalancing_weights,
    smoothed_distribution,
)
from chromalab.training.config import TrainConfig
from tests.conftest import synthetic_photo



def random_l(batch: int = 2, height: int = 32, width: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def random_srgb_ab(count: int, seed: int = 0) -> torch.Tensor:
    """a*b* (Lab units) of random sRGB colors, as (1, 2, 1, count)."""
    rgb = torch.rand(1, 3, 1, count, generator=torch.Generator().manual_seed(seed))
    return rgb_to_lab(rgb)[:, 1:]


# --- VAE ----------------------------------------------------------------------------------

VAE_KWARGS = {"depth": 3, "width": 8, "max_width": 16, "encoder_width": 8}


@pytest.mark.parametrize("name", ["vae", "unet-vae"])
def test_vae_prior_samples_differ_and_a_seed_reproduces_one(name: str) -> None:
    net = create_model(name, **VAE_KWARGS).eval()
    l_norm = random_l()
    first = net.predict(l_norm, generator=torch.Generator().manual_seed(1))
    again = net.predict(l_norm, generator=torch.Generator().manual_seed(1))
    other = net.predict(l_norm, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().mean() > 1e-4  # small at initialization, but there
    # Temperature 0 is the prior's mean, z = 0, whatever the seed.
    cold_a = net.predict(l_norm, generator=torch.Generator().manual_seed(1), temperature=0.0)
    cold_b = net.predict(l_norm, generator=torch.Generator().manual_seed(2), temperature=0.0)
    torch.testing.assert_close(cold_a, cold_b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["vae", "unet-vae"])
def test_vae_posterior_mean_is_deterministic_and_uses_the_colors(name: str) -> None:
    net = create_model(name, **VAE_KWARGS).eval()
    l_norm = random_l()
    target = torch.rand(2, 2, 32, 32, generator=torch.Generator().manual_seed(5)) - 0.5
    with torch.no_grad():
        a, mu, logvar = net(l_norm, target, sample=False)
        b, _, _ = net(l_norm, target, sample=False)
        c, mu_other, _ = net(l_norm, -target, sample=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert mu.shape == logvar.shape
    assert (mu - mu_other).abs().max() > 0  # the posterior sees the colors


def test_kl_matches_torch_distributions() -> None:
    from chromalab.training.variational import kl_to_standard_normal

    mu, logvar = torch.randn(3, 5), torch.randn(3, 5)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3, 5), torch.ones(3, 5))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), expected)


# --- Diffusion ----------------------------------------------------------------------------

DIFFUSION_KWARGS = {"widths": (16, 32), "chroma_stride": 2}


def test_noising_at_t0_is_nearly_the_identity() -> None:
    net = create_model("diffusion", **DIFFUSION_KWARGS)
    x0 = torch.rand(2, 2, 8, 8) - 0.5
    noise = torch.randn(2, 2, 8, 8)
    noisy = net.noise_scheduler.add_noise(x0, noise, torch.zeros(2, dtype=torch.long))
    alpha_bar = float(net.noise_scheduler.alphas_cumprod[0])
    # x_0 = sqrt(abar) x0 + sqrt(1 - abar) eps, with abar within 1e-4 of 1 at t = 0.
    assert 1 - alpha_bar < 1e-3
    torch.testing.assert_close(noisy, math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * noise)
    assert (noisy - x0).abs().max() < 0.05


# (Not t = 999: there sqrt(alpha_bar) ~ 1e-2 amplifies float32 rounding in x0's recovery.)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("t", [0, 10, 500, 900])
def test_scheduler_step_with_the_true_target_recovers_x0(t: int, prediction_type: str) -> None:
    # What training teaches (training_target) is what the samplers read the output as.
    net = create_model("diffusion", **DIFFUSION_KWARGS, prediction_type=prediction_type)
    x0 = torch.rand(2, 2, 8, 8) - 0.5  # inside the clip range
    noise = torch.randn(2, 2, 8, 8)
    timestep = torch.tensor(t)
    noisy = net.noise_scheduler.add_noise(x0, noise, timestep.expand(2))
    target = net.training_target(x0, noise, timestep.expand(2))
    for sampler in SAMPLERS:
        scheduler = net.make_scheduler(sampler)
        if sampler == "ddim":
            scheduler.set_timesteps(50)
        step = scheduler.step(target, timestep, noisy, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(step.pred_original_sample, x0, atol=2e-4, rtol=0)
        if t == 0 and sampler == "ddpm":  # the last reverse step adds no noise: it lands on x0
            torch.testing.assert_close(step.prev_sample, x0, atol=2e-4, rtol=0)


def test_velocity_is_the_documented_mix_of_noise_and_chroma() -> None:
    net = create_model("diffusion", **DIFFUSION_KWARGS, prediction_type="v_prediction")
    x0, noise, t = torch.rand(2, 2, 4, 4), torch.randn(2, 2, 4, 4), torch.tensor([100, 800])
    alpha_bar = net.noise_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    expected = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
    torch.testing.assert_close(net.training_target(x0, noise, t), expected)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampling_with_an_oracle_denoiser_returns_the_clean_chroma(sampler: str, prediction_type: str) -> None:
    """predict() end to end (padding, chroma grid, schedule, decoding) with a perfect
    predictor: whatever the starting noise, sampling must land on x0."""
    net = create_model("diffusion", **DIFFUSION_KWARGS, sampler=sampler, steps=20,
                       prediction_type=prediction_type).eval()
    l_norm = random_l(2, 22, 38)  # padded to 24 x 40 (a multiple of stride x 2**(levels-1))
    padded, _ = net.pad(l_norm)
    grid = net.chroma_grid(*padded.shape[-2:])
    x0 = (torch.rand(2, 2, *grid, generator=torch.Generator().manual_seed(4)) - 0.5) * net.chroma_gain
    alphas = net.noise_scheduler.alphas_cumprod

    def oracle(self, noisy: torch.Tensor, l: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        alpha_bar = alphas[timesteps.long()].view(-1, 1, 1, 1)
        noise = (noisy - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
        return net.training_target(x0, noise, timesteps.long())

    net.forward = types.MethodType(oracle, net)  # type: ignore[method-assign]
    colors = net.predict(l_norm, generator=torch.Generator().manual_seed(9))
    expected = net.decode_chroma(x0, padded.shape[-2:])[..., :22, :38]
    torch.testing.assert_close(colors, expected, atol=1e-3, rtol=0)


def test_new_runs_predict_velocity_and_old_model_files_stay_epsilon() -> None:
    from chromalab.training.diffusion import DiffusionObjective

    config = TrainConfig.from_dict({"model": {"name": "diffusion", "kwargs": dict(DIFFUSION_KWARGS)}})
    assert DiffusionObjective(config.to_dict()).spec.kwargs["prediction_type"] == "v_prediction"
    assert create_model("diffusion", **DIFFUSION_KWARGS).prediction_type == "epsilon"  # no key: written before
    with pytest.raises(ChromalabError, match="prediction_type='noise': expected 'epsilon', 'v_prediction' or 'sample'"):
        config.set("diffusion.prediction_type", "noise")  # the typed options catch it first
    config.diffusion.prediction_type = "noise"  # set from code: the objective still checks
    with pytest.raises(ChromalabError, match="prediction_type 'noise'"):
        DiffusionObjective(config.to_dict())


def test_diffusion_samples_depend_on_the_seed_only() -> None:
    net = create_model("diffusion", **DIFFUSION_KWARGS, steps=3).eval()
    l_norm = random_l()
    a = net.predict(l_norm, generator=torch.Generator().manual_seed(0))
    b = net.predict(l_norm, generator=torch.Generator().manual_seed(0))
    c = net.predict(l_norm, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().mean() > 1e-4
    assert a.abs().max() <= 1.0


def test_diffusion_config_reaches_the_model_file() -> None:
    from chromalab.training.diffusion import DiffusionObjective

    config = TrainConfig.from_dict({
        "model": {"name": "diffusion", "kwargs": dict(DIFFUSION_KWARGS)},
        "diffusion": {"sampler": "ddpm", "steps": 7, "timesteps": 200, "beta_schedule": "linear"},
    })
    objective = DiffusionObjective(config.to_dict())
    for key, value in {"sampler": "ddpm", "steps": 7, "num_train_timesteps": 200, "beta_schedule": "linear"}.items():
        assert objective.spec.kwargs[key] == value
        assert objective.hparams["config"]["model"]["kwargs"][key] == value  # .ckpt files too
    rebuilt = objective.spec.build()
    assert (rebuilt.sampler, rebuilt.steps, rebuilt.num_train_timesteps) == ("ddpm", 7, 200)


def test_diffusion_validation_loss_is_deterministic() -> None:
    from chromalab.training.diffusion import DiffusionObjective

    config = TrainConfig.from_dict({"model": {"name": "diffusion", "kwargs": dict(DIFFUSION_KWARGS)}})
    objective = DiffusionObjective(config.to_dict()).eval()
    l_norm, target = random_l(), torch.rand(2, 2, 32, 32) * 0.4 - 0.2
    with torch.no_grad():
        first = objective.validation_loss(l_norm, target, batch_idx=3)
        second = objective.validation_loss(l_norm, target, batch_idx=3)
    assert first == second


# --- Classification -----------------------------------------------------------------------


def test_gamut_table_matches_a_measurement() -> None:
    shipped = {(a, b) for a, (low, high) in GAMUT_ROWS.items() for b in range(low, high + 1)}
    assert len(shipped) == NUM_BINS
    # A coarse sampling of the sRGB cube can only find cells the full measurement found.
    measured = measure_gamut_cells(step=17)
    assert measured <= shipped
    assert len(measured) > 0.75 * NUM_BINS


def test_quantization_round_trip_error_is_below_half_a_cell_diagonal() -> None:
    ab = random_srgb_ab(20000)
    centers = bin_centers()
    index = nearest_bin(ab, centers)
    decoded = centers[index].permute(0, 3, 1, 2)
    error = (decoded - ab).norm(dim=1)
    assert error.max() <= GRID / 2 * math.sqrt(2) + 1e-4
    # Brute-force reference for the nearest cell.
    reference = torch.cdist(ab[0, :, 0].T, centers).argmin(1)
    assert torch.equal(index.flatten(), reference)


def test_soft_encoding_is_five_gaussian_weighted_nearest_cells() -> None:
    ab = random_srgb_ab(50, seed=1)
    centers = bin_centers()
    encoded = soft_encode(ab, centers, neighbours=5, sigma=5.0)[0, :, 0].T  # (50, Q)
    torch.testing.assert_close(encoded.sum(1), torch.ones(50))
    assert ((encoded > 0).sum(1) == 5).all()
    points = ab[0, :, 0].T.double().numpy()
    for point, row in zip(points, encoded.double().numpy()):
        distances = np.linalg.norm(centers.double().numpy() - point, axis=1)
        nearest = np.argsort(distances)[:5]
        weights = np.exp(-distances[nearest] ** 2 / (2 * 5.0**2))
        np.testing.assert_allclose(row[nearest], weights / weights.sum(), rtol=1e-4, atol=1e-6)


def test_rebalancing_weights_have_unit_expectation_and_favour_rare_colors() -> None:
    centers = bin_centers()
    counts = torch.rand(NUM_BINS, generator=torch.Generator().manual_seed(0)) ** 6 * 1000
    smoothed = smoothed_distribution(counts, centers, sigma=5.0)
    torch.testing.assert_close(smoothed.sum(), torch.tensor(1.0))
    weights = rebalancing_weights(smoothed, mix=0.5)
    torch.testing.assert_close((smoothed * weights).sum(), torch.tensor(1.0))
    assert weights[smoothed.argmin()] == weights.max()
    assert weights[smoothed.argmax()] == weights.min()
    # Closed forms at the ends of lambda: all-uniform mixing gives weight 1 everywhere;
    # no mixing gives w_q = 1 / (Q p~_q).
    torch.testing.assert_close(rebalancing_weights(smoothed, mix=1.0), torch.ones(NUM_BINS))
    torch.testing.assert_close(rebalancing_weights(smoothed, mix=0.0), 1.0 / (NUM_BINS * smoothed))


def test_smoothing_is_a_gaussian_over_the_cells() -> None:
    centers = bin_centers()
    counts = torch.zeros(NUM_BINS)
    counts[100] = 1.0
    smoothed = smoothed_distribution(counts, centers, sigma=5.0)
    distance = (centers - centers[100]).norm(dim=1)
    neighbours = (distance - GRID).abs() < 1e-4
    # Each 4-neighbour gets exp(-10^2 / (2 * 5^2)) = e^-2 of the center's share.
    ratio = smoothed[neighbours] / smoothed[100]
    torch.testing.assert_close(ratio, torch.full_like(ratio, math.exp(-2.0)))


def test_annealed_mean_tends_to_the_mode_and_t1_is_the_mean() -> None:
    centers = bin_centers()
    logits = torch.randn(2, NUM_BINS, 3, 3, generator=torch.Generator().manual_seed(0)) * 3
    # A clear winner per pixel (margin >= 1), so "the mode" is well defined.
    logits = logits + 1.0 * F.one_hot(logits.argmax(1), NUM_BINS).permute(0, 3, 1, 2)
    mode = centers[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(annealed_mean(logits, centers, 0.0), mode)
    torch.testing.assert_close(annealed_mean(logits, centers, 0.01), mode, atol=1e-2, rtol=0)
    mean = torch.einsum("bqhw,qc->bchw", torch.softmax(logits, 1), centers)
    torch.testing.assert_close(annealed_mean(logits, centers, 1.0), mean)
    # Lower temperatures move from the mean toward the mode.
    gaps = [(annealed_mean(logits, centers, t) - mode).norm() for t in (1.0, 0.38, 0.1)]
    assert gaps[0] > gaps[1] > gaps[2]


def test_objective_estimates_rebalancing_from_photos() -> None:
    config = TrainConfig.from_dict({"model": {"name": "classify", "kwargs": {"widths": [8, 16, 32]}},
                                    "data": {"size": 32}})
    objective = ClassificationObjective(config.to_dict())
    photos = [np.asarray(synthetic_photo(seed, 32, 32)) for seed in range(6)]
    batch = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).contiguous()
    objective.estimate_rebalancing([batch[:3], batch[3:]])
    assert bool(objective.estimated)
    torch.testing.assert_close(objective.empirical.sum(), torch.tensor(1.0))
    torch.testing.assert_close((objective.empirical * objective.bin_weights).sum(), torch.tensor(1.0))
    # The weights follow from the pixel counts of these photos (independent histogram).
    ab = rgb_to_lab(batch.float() / 255)[:, 1:]
    counts = torch.bincount(torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), bin_centers()).argmin(1),
                            minlength=NUM_BINS)
    expected = rebalancing_weights(smoothed_distribution(counts, bin_centers(), 5.0), 0.5)
    torch.testing.assert_close(objective.bin_weights, expected, rtol=1e-4, atol=1e-5)
    # Not part of the network: the model file does not carry them.
    assert not any("weights" in key for key in objective.net.state_dict())


def test_classify_prediction_is_normalized_ab() -> None:
    net = create_model("classify", widths=(8, 16, 32)).eval()
    colors = net.predict(random_l(1, 20, 36))
    assert colors.shape == (1, 2, 20, 36)
    assert colors.abs().max() <= normalize_ab(torch.tensor(110.0)) + 1e-6
