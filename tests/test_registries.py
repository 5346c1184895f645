"""The one registry behind every named choice: models, training objectives, discriminators,
GAN losses and pixel losses. Each looks names up, describes its entries and refuses an unknown
name the same way, from Python, from a config option and from the command line."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Callable

import pytest

from chromalab.errors import ChromalabError
from chromalab.losses.adversarial import GAN_LOSS_REGISTRY, check_gan_loss, generator_loss
from chromalab.losses.pixel import PIXEL_LOSS_REGISTRY, make_pixel_loss
from chromalab.models.discriminators import DISCRIMINATOR_REGISTRY, create_discriminator
from chromalab.models.registry import MODELS, create_model, list_models, model_names
from chromalab.registry import Registry, UnknownNameError, unknown_name_message
from chromalab.training import config as C
from chromalab.training.objective import OBJECTIVES, objective_class

REGISTRIES: dict[str, Registry[Any]] = {
    "model": MODELS,
    "training objective": OBJECTIVES,
    "discriminator": DISCRIMINATOR_REGISTRY,
    "GAN loss": GAN_LOSS_REGISTRY,
    "pixel loss": PIXEL_LOSS_REGISTRY,
}
# The public function that looks each kind up, as the rest of chromalab calls it.
LOOKUPS: dict[str, Callable[[str], object]] = {
    "model": create_model,
    "training objective": objective_class,
    "discriminator": lambda name: create_discriminator(name, 3),
    "GAN loss": lambda name: generator_loss(name, __import__("torch").zeros(1)),
    "pixel loss": make_pixel_loss,
}
ONE_LINE = re.compile(r"unknown (?P<kind>[\w ]+) '(?P<name>[^']*)'; (did you mean '[^']+'\? )?choose from: (?P<choices>.+)")


@pytest.mark.parametrize("kind", REGISTRIES)
def test_an_unknown_name_is_one_line_naming_the_kind_and_every_choice(kind: str) -> None:
    registry = REGISTRIES[kind]
    with pytest.raises(UnknownNameError) as caught:
        LOOKUPS[kind]("no-such-thing")
    message = str(caught.value)
    match = ONE_LINE.fullmatch(message)
    assert match and "\n" not in message, message
    assert match["kind"] == kind == registry.kind and match["name"] == "no-such-thing"
    assert match["choices"].split(", ") == sorted(registry.names())
    # A ChromalabError (one line at the command line, exit 2) and, as before, a ValueError.
    assert isinstance(caught.value, ChromalabError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("kind", REGISTRIES)
def test_a_near_miss_suggests_the_closest_name(kind: str) -> None:
    registry = REGISTRIES[kind]
    name = max(registry.names(), key=len)
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")  # one letter off
    with pytest.raises(UnknownNameError, match=re.escape(f"did you mean {name!r}?")):
        registry.get(typo)


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_entry_has_a_one_line_description_and_is_found_by_its_name(kind: str) -> None:
    registry = REGISTRIES[kind]
    descriptions = registry.descriptions()
    assert list(descriptions) == list(registry.names()) and len(descriptions) >= 3
    for name, text in descriptions.items():
        assert text.strip() and "\n" not in text, (name, text)
        assert registry.canonical(name.upper()) == name  # lookups ignore case
        assert registry.get(name) is registry.entry(name).value


def test_each_models_objective_is_a_registered_objective() -> None:
    for entry in list_models():
        assert entry.objective in OBJECTIVES, entry
    assert list(model_names()) == sorted(MODELS.names())


def test_aliases_resolve_but_are_not_listed() -> None:
    assert PIXEL_LOSS_REGISTRY.canonical("mse") == "l2" and PIXEL_LOSS_REGISTRY.canonical("L1L2") == "l1+l2"
    assert "mse" not in PIXEL_LOSS_REGISTRY.names() and "mse" in PIXEL_LOSS_REGISTRY
    assert check_gan_loss("LSGAN") == "lsgan"


def test_a_registry_refuses_a_name_twice_and_an_entry_without_description() -> None:
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1, "the first")
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("A", 2, "the same name in capitals")
    with pytest.raises(ValueError, match="needs a description"):
        registry.add("b", 2, " ")
    assert registry.names() == ("a",)


def test_a_registry_loads_its_modules_once_on_first_lookup() -> None:
    calls: list[int] = []
    registry: Registry[int] = Registry("widget", load=lambda: (calls.append(1), registry.add("late", 7, "registered on load")))
    assert calls == []
    assert registry.get("late") == 7 and registry.names() == ("late",) and calls == [1]


@pytest.mark.parametrize("kind, path", [("pixel loss", "loss.pixel"), ("discriminator", "gan.discriminator"),
                                        ("GAN loss", "gan.loss")])
def test_config_choices_are_the_registries_and_refuse_like_them(kind: str, path: str) -> None:
    registry = REGISTRIES[kind]
    section, name = path.split(".")
    hint = typing.get_type_hints(type(getattr(C.TrainConfig(), section)))[name]
    literal = C._literal_of(hint)
    assert set(typing.get_args(literal)) == set(registry.names()) and C.CHOICE_KINDS[literal] == kind
    with pytest.raises(ChromalabError) as caught:
        C.TrainConfig().set(path, "no-such-thing")
    assert str(caught.value) == f"option {path}: " + unknown_name_message(kind, "no-such-thing", registry.names())


@pytest.mark.parametrize("flags, message", [
    (["--gan-loss", "lsgn", "--discriminator", "patch"],
     "option gan.loss: unknown GAN loss 'lsgn'; did you mean 'lsgan'? choose from: hinge, lsgan, vanilla, wgan-gp"),
    (["--model", "unte"], "unknown model 'unte'; did you mean 'unet'? choose from: "),
])
def test_the_command_line_says_it_in_one_line_and_writes_no_run(
    flags: list[str], message: str, photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chromalab.cli import main

    code = main(["train", "--data", str(photo_dir), "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
