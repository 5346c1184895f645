"""Old-photo damage (chromalab.data.damage): seeded, each kind does what it says, input only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chromalab.color import denormalize_l, rgb_to_l_norm
from chromalab.data.damage import OldPhotoDamage, damage_lightness, photo_generator
from chromalab.evaluation.baselines import GrayBaseline
from chromalab.evaluation.evaluate import evaluate_models
from chromalab.training.config import TrainConfig
from chromalab.training.objective import objective_class
from tests.conftest import synthetic_photo

def only(kind: str, **strengths: float) -> OldPhotoDamage:
    """A recipe applying one kind of damage to every photo."""
    return OldPhotoDamage(each=1.0, kinds=(kind,), **strengths)


def photos(count: int = 6, side: int = 64) -> torch.Tensor:
    """L* (0-100) of smooth synthetic photos, (count, 1, side, side)."""
    rgb = torch.stack([torch.from_numpy(np.asarray(synthetic_photo(i, side, side), dtype=np.float32) / 255)
                       .permute(2, 0, 1) for i in range(count)])
    return denormalize_l(rgb_to_l_norm(rgb))


def high_frequency(lightness: torch.Tensor) -> torch.Tensor:
    """Mean absolute Laplacian per photo: detail, grain and blocking raise it, blur lowers it."""
    kernel = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32).view(1, 1, 3, 3)
    return F.conv2d(lightness, kernel).abs().flatten(1).mean(1)


def test_same_seed_same_damage_other_seed_other_damage() -> None:
    lightness = photos()
    first = damage_lightness(lightness, torch.Generator().manual_seed(7))
    again = damage_lightness(lightness, torch.Generator().manual_seed(7))
    other = damage_lightness(lightness, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == lightness.shape and first.min() >= 0 and first.max() <= 100


def test_probability_zero_leaves_the_input_and_one_damages_every_photo() -> None:
    lightness = photos()
    untouched = damage_lightness(lightness, torch.Generator().manual_seed(0), OldPhotoDamage(probability=0.0))
    assert torch.equal(untouched, lightness)
    every = damage_lightness(lightness, torch.Generator().manual_seed(0), OldPhotoDamage(probability=1.0, each=1.0))
    assert ((every - lightness).abs().flatten(1).mean(1) > 0.5).all()


def test_each_kind_of_damage_does_what_it_says() -> None:
    lightness = photos()
    clean_detail = high_frequency(lightness)
    faded = damage_lightness(lightness, torch.Generator().manual_seed(1), only("fade"))
    assert (faded.flatten(1).std(1) < lightness.flatten(1).std(1)).all()  # contrast pulled in
    blurred = damage_lightness(lightness, torch.Generator().manual_seed(1), only("blur", blur=6.0))  # sigma >= 0.3 px at 256 px is tiny on 64 px
    assert (high_frequency(blurred) < clean_detail).all()
    grainy = damage_lightness(lightness, torch.Generator().manual_seed(1), only("grain"))
    noise = (grainy - lightness).flatten(1).std(1)
    assert (noise > 0).all() and (noise < 6.5).all()  # std up to 6 L* units (a little less where clamped)
    assert (high_frequency(grainy) > clean_detail).all()
    compressed = damage_lightness(lightness, torch.Generator().manual_seed(1), only("jpeg"))
    error = (compressed - lightness).abs().flatten(1).mean(1)
    assert (error > 0.05).all() and (error < 5).all()  # a real codec: small, nonzero loss


def test_photo_generator_follows_the_file_name_not_the_folder() -> None:
    lightness = photos(1)
    a = damage_lightness(lightness, photo_generator(Path("x/photo.jpg")))
    b = damage_lightness(lightness, photo_generator(Path("y/photo.jpg")))
    c = damage_lightness(lightness, photo_generator(Path("x/other.jpg")))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_training_damages_the_input_only_and_validation_not_at_all() -> None:
    images = torch.stack([torch.from_numpy(np.asarray(synthetic_photo(i, 32, 32)).copy()).permute(2, 0, 1)
                          for i in range(8)])

    def objective(damage: float) -> torch.nn.Module:
        config = TrainConfig.from_dict({"model": {"name": "unet-tiny"}, "data": {"size": 32, "damage": damage}})
        return objective_class("regression")(config.to_dict())

    clean, damaged = objective(0.0).train(), objective(1.0).train()
    torch.manual_seed(3)
    l_clean, target_clean, rgb_clean = clean.prepare_batch(images)
    torch.manual_seed(3)  # the same crops and flips; the damage draws come after them
    l_damaged, target_damaged, rgb_damaged = damaged.prepare_batch(images)
    assert torch.equal(target_clean, target_damaged) and torch.equal(rgb_clean, rgb_damaged)
    assert torch.allclose(l_clean, rgb_to_l_norm(rgb_clean))
    changed = (l_damaged - l_clean).abs().flatten(1).mean(1) > 1e-3
    assert changed.sum() >= 4  # each photo gets each kind with chance 1/2: nearly all are touched
    assert torch.equal(damaged.eval().prepare_batch(images)[0], clean.eval().prepare_batch(images)[0])


def test_evaluate_with_damage_is_seeded_by_name_and_scores_against_the_clean_truth(photo_dir: Path) -> None:
    def evaluated(damage: bool) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
        result = evaluate_models({"gray": GrayBaseline()}, photo_dir, size=32, metrics=["psnr"],
                                 progress=False, damage=damage)[0]
        as_arrays = [np.asarray(image, dtype=np.int16) for image in result.samples.gray]
        return as_arrays, [np.asarray(image) for image in result.samples.truth], [r["psnr"] for r in result.per_image]

    clean_gray, clean_truth, clean_psnr = evaluated(False)
    damaged_gray, damaged_truth, damaged_psnr = evaluated(True)
    again_gray, _, again_psnr = evaluated(True)
    assert damaged_psnr == again_psnr and all(np.array_equal(a, b) for a, b in zip(damaged_gray, again_gray))
    assert all(np.array_equal(a, b) for a, b in zip(clean_truth, damaged_truth))  # the truth stays clean
    changed = [np.abs(a - b).mean() for a, b in zip(clean_gray, damaged_gray)]
    assert sum(c > 0.5 for c in changed) >= len(changed) // 2  # each kind with chance 1/2 per photo
    for image in damaged_gray:  # still a neutral gray: damage touches lightness only
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    assert damaged_psnr != clean_psnr
