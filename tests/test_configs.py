"""Every experiment file in configs/ loads and builds its training objective (no training)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from chromalab.cli import train as train_cli
from chromalab.errors import ChromalabError
from chromalab.training.config import TrainConfig
from chromalab.training.trainer import build_objective, objective_name

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))



def test_the_model_zoo_configs_exist() -> None:
    names = {path.stem for path in CONFIGS}
    assert names >= {
        "unet-l1", "unet-l2", "unet-huber", "unet-perceptual", "pix2pix-patch-vanilla",
        "pix2pix-patch-lsgan", "pix2pix-patch-wgangp", "resnet-gan", "critic-gan", "pixel-gan",
        "cca-unet-multiscale-gan", "cgan-unet-d-rgb", "cgan-unet-d-hsv", "cgan-unet-d-ycbcr",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_its_objective(path: Path) -> None:
    config = TrainConfig.from_yaml(path)
    objective = build_objective(config)
    assert objective.net.out_channels == objective.space.channels
    if config.gan.discriminator:
        assert objective_name(config) == "adversarial"
        assert not objective.automatic_optimization
        # the discriminator sees cat(L, colors of the configured space)
        size = 16
        l_norm = torch.zeros(1, 1, size, size)
        colors = torch.zeros(1, objective.space.channels, size, size)
        objective.disc.eval()
        with torch.no_grad():
            objective.judge(l_norm, colors)


def test_gan_configs_say_what_their_names_say() -> None:
    def load(name: str) -> TrainConfig:
        return TrainConfig.from_yaml(Path(__file__).parent.parent / "configs" / f"{name}.yaml")

    assert load("pix2pix-patch-vanilla").gan.real_label == 0.9
    assert (load("pix2pix-patch-wgangp").gan.loss, load("critic-gan").gan.discriminator) == ("wgan-gp", "critic")
    assert load("cca-unet-multiscale-gan").model.kwargs["attention"] == "criss-cross"
    for space in ("rgb", "hsv", "ycbcr"):
        config = load(f"cgan-unet-d-{space}")
        assert (config.model.color_space, config.gan.discriminator) == (space, "unet")


def test_command_line_gan_flags_select_adversarial_training() -> None:
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args([
        "train", "--model", "unet", "--discriminator", "patch", "--gan-loss", "lsgan", "--l1-weight", "100",
        "--attention", "criss-cross",
    ])
    config = train_cli.resolve_config(args)
    assert objective_name(config) == "adversarial"
    objective = build_objective(config)
    assert type(objective.disc).__name__ == "PatchDiscriminator" and objective.gan_loss == "lsgan"
    assert any(type(m).__name__ == "CrissCrossAttention" for m in objective.net.modules())


# --- Typed options ---------------------------------------------------------------------------


@pytest.mark.parametrize("path, value, expected", [
    ("gan.d_lr", "abc", "gan.d_lr='abc': expected a valid number"),  # a None default takes no text
    ("data.batch_size", "12.5", "data.batch_size=12.5: expected a valid integer"),
    ("optim.lr", "-1", "optim.lr=-1: expected greater than 0"),
    ("data.val_fraction", "1", "data.val_fraction=1: expected less than 1"),
    ("loss.pixel", "l3", "option loss.pixel: unknown pixel loss 'l3'; choose from: huber, l1, l1+l2, l2"),
    ("gan.discriminator", "patchy", "unknown discriminator 'patchy'; did you mean 'patch'? choose from: critic, "
                                    "multiscale, patch, pixel, unet"),
    ("diffusion.sampler", "euler", "expected 'ddpm' or 'ddim'"),
    ("trainer.precision", "bf15", "trainer.precision='bf15': expected 'auto', '32-true'"),
    ("model.color_space", "cmyk", "expected 'lab', 'rgb', 'hsv', 'ycbcr' or 'yuv'"),
])
def test_every_option_is_checked_by_its_declared_type(path: str, value: str, expected: str) -> None:
    config = TrainConfig()
    before = config.get(path)
    with pytest.raises(ChromalabError) as error:
        config.set(path, value)
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert config.get(path) == before  # nothing half-set


def test_typed_options_convert_what_fits() -> None:
    config = TrainConfig()
    config.set("gan.d_lr", "2e-4")
    config.set("trainer.val_every", "0.5")
    config.set("optim.betas", "[0.5, 0.999]")
    config.set("data.limit", "null")
    config.set("out", "2024")  # a folder named like a number stays text
    assert (config.gan.d_lr, config.trainer.val_every, config.optim.betas) == (2e-4, 0.5, (0.5, 0.999))
    assert config.data.limit is None and config.out == "2024"


def test_the_choices_are_the_registries() -> None:
    import typing

    from chromalab.color import COLOR_SPACES
    from chromalab.losses.adversarial import GAN_LOSSES
    from chromalab.losses.perceptual import PERCEPTUAL_LOSSES
    from chromalab.losses.pixel import PIXEL_LOSSES
    from chromalab.models.diffusion import PREDICTION_TYPES, SAMPLERS
    from chromalab.models.discriminators import DISCRIMINATORS
    from chromalab.precision import PRECISIONS
    from chromalab.training import config as C

    choices = lambda hint: set(typing.get_args(hint))  # noqa: E731
    assert choices(C.PixelLoss) == set(PIXEL_LOSSES) and choices(C.GanLoss) == set(GAN_LOSSES)
    assert choices(C.PerceptualLoss) == set(PERCEPTUAL_LOSSES) and choices(C.Discriminator) == set(DISCRIMINATORS)
    assert choices(C.Sampler) == set(SAMPLERS) and choices(C.PredictionType) == set(PREDICTION_TYPES)
    assert set(PRECISIONS) <= choices(C.Precision)
    spaces = typing.get_args(typing.get_type_hints(C.ModelConfig)["color_space"])[0]
    assert choices(spaces) == set(COLOR_SPACES)


def test_a_bad_set_on_an_existing_run_is_one_line_and_writes_nothing(tiny_model, capsys) -> None:
    from chromalab.cli import main

    before = {p: p.read_bytes() for p in tiny_model.rglob("*") if p.is_file()}
    code = main(["train", "--config", str(tiny_model / "config.yaml"), "--out", str(tiny_model),
                 "--set", "gan.d_lr=abc"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "gan.d_lr='abc'" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in tiny_model.rglob("*") if p.is_file()} == before
