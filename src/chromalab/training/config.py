"""Training configuration: typed sections, loaded from YAML, overridden from the command line.

Every option has a dotted path (``optim.lr``, ``gan.l1_weight``, ``model.kwargs.depth``) that
works the same in YAML files, in ``--set path=value`` and in sweeps. Unknown paths are errors,
so a typo never silently trains the default.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from chromalab.errors import ChromalabError
from chromalab.registry import unknown_name_message


# Constrained types: every field is validated by its declared type (pydantic), so a value of the
# wrong kind, out of range or outside the choices is one line naming the option before any work.
# The choices mirror the registries (losses, discriminators, samplers); tests/test_configs.py
# checks that they stay equal, without importing torch-heavy modules into every config load.
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
PixelLoss = Literal["l1", "l2", "huber", "l1+l2"]
PerceptualLoss = Literal["stlpips", "effnet"]
Discriminator = Literal["patch", "pixel", "critic", "multiscale", "unet"]
GanLoss = Literal["vanilla", "lsgan", "wgan-gp", "hinge"]
Sampler = Literal["ddpm", "ddim"]
PredictionType = Literal["epsilon", "v_prediction", "sample"]
BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
Precision = Literal["auto", "32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true", "64"]
# Choices that name a registry entry: a value outside them gets the registry's own one-line
# "unknown <kind> 'x'; did you mean ...? choose from: ..." (chromalab.registry), the same
# message as a lookup in Python or a model name in a config. The kinds are the registries'.
CHOICE_KINDS: dict[Any, str] = {PixelLoss: "pixel loss", Discriminator: "discriminator", GanLoss: "GAN loss"}


@dataclass
class ModelConfig:
    name: str = "unet"
    kwargs: dict[str, Any] = field(default_factory=dict)  # the constructor's own options
    color_space: Literal["lab", "rgb", "hsv", "ycbcr", "yuv"] | None = None  # None: the model's default
    init_from: str | None = None  # start from this model's weights (run folder, file, "default")


@dataclass
class DataConfig:
    path: str = ""  # a photo folder (recursive)
    size: Annotated[int, Field(ge=8)] = 128  # training crop size
    batch_size: Positive = 32
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.05
    seed: int = 0
    workers: NonNegative | None = None  # None: cores - 1
    cache: bool = False  # keep decoded photos in a memory-mapped array
    limit: Positive | None = None  # use at most this many training photos
    min_crop_scale: Annotated[float, Field(gt=0, le=1)] = 0.5  # random resized crop: smallest area fraction
    mood_augment: bool = False  # training-time hue shifts of the targets (control issue)
    damage: Fraction = 0.0  # share of photos whose gray input gets old-photo damage (data.damage)


@dataclass
class LossConfig:
    pixel: PixelLoss = "l1"
    huber_delta: PositiveFloat = 1.0
    space: Literal["native", "rgb"] = "native"  # native (the model's color space) or rgb (after Lab -> RGB)
    perceptual: PerceptualLoss | None = None
    perceptual_weight: NonNegativeFloat = 0.1


@dataclass
class OptimConfig:
    lr: PositiveFloat = 2e-3
    weight_decay: NonNegativeFloat = 1e-4
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)
    warmup_steps: NonNegative = 100
    min_lr_ratio: Fraction = 0.02  # cosine decays to lr * min_lr_ratio
    grad_clip: PositiveFloat | None = 1.0
    freeze_encoder_epochs: NonNegative = 0  # keep a pretrained encoder (net.encoder) fixed this long


@dataclass
class TrainerConfig:
    epochs: Positive = 10
    max_steps: Annotated[int, Field(ge=-1)] = -1
    # Wall-clock limit, Lightning's "DD:HH:MM:SS" (e.g. "00:01:40:00"): equal-time comparisons.
    # The LR schedule is still laid out over `epochs`; pick epochs that roughly fill the time.
    max_time: str | None = None  # its form is checked with the other Lightning options
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: Positive = 1
    strategy: str = "auto"
    # auto: bf16-mixed where the processor has bf16 units (AMX, AVX-512 BF16, recent GPUs), else
    # 32-true; chromalab.precision says why.
    precision: Precision = "auto"
    patience: Positive | None = None  # early stopping on val/loss, in validation rounds
    # Validate every N epochs (a whole number) or a fraction of an epoch (under 1).
    val_every: Annotated[float, Field(gt=0)] = 1.0
    log_every: Positive = 10
    samples: NonNegative = 8  # validation photos in the sample grid
    # Also keep the weights every N epochs (checkpoints/epochNNN.ckpt): a GAN's best epoch is
    # chosen afterwards by FID, which its validation L1 does not track.
    snapshot_every: Positive | None = None
    # The same every N optimizer steps (checkpoints/stepNNNNNN.ckpt): for runs shorter than an
    # epoch of a large corpus, and for FID-against-time curves.
    snapshot_every_steps: Positive | None = None
    limit_val_batches: Annotated[float, Field(gt=0)] = 1.0
    progress: bool = True


@dataclass
class GanConfig:
    # Setting a discriminator turns any regression generator into a pix2pix-style GAN.
    discriminator: Discriminator | None = None
    loss: GanLoss = "vanilla"
    l1_weight: NonNegativeFloat = 100.0
    real_label: Fraction = 1.0  # one-sided label smoothing: e.g. 0.9
    fake_label: Fraction = 0.0
    n_critic: Positive = 1
    gp_weight: NonNegativeFloat = 10.0
    d_lr: PositiveFloat | None = None  # None: optim.lr
    g_lr: PositiveFloat | None = None
    pretrain_epochs: NonNegative = 0  # L1-only generator epochs before the adversarial phase
    d_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class VaeConfig:
    beta: NonNegativeFloat = 0.001


@dataclass
class DiffusionConfig:
    timesteps: Positive = 1000
    beta_schedule: BetaSchedule = "squaredcos_cap_v2"
    sampler: Sampler = "ddim"
    steps: Positive = 50
    prediction_type: PredictionType = "v_prediction"  # see models/diffusion.py


@dataclass
class ClassifyConfig:
    sigma: PositiveFloat = 5.0
    neighbours: Positive = 5
    rebalance_lambda: Fraction = 0.5
    temperature: PositiveFloat = 0.38
    prior_photos: Positive = 500  # training photos counted for the class-rebalancing prior


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    out: str | None = None  # the run folder; None: runs/<model>-<date>-<time>. Never an earlier run's.
    seed: int = 0

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        config = cls()
        for path, value in flatten(values).items():
            config.set(path, value)
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        from chromalab.yaml_files import read_yaml_mapping

        values = read_yaml_mapping(path, "config", "of sections: model, data, loss, optim, trainer, ...", empty_ok=True)
        try:
            return cls.from_dict(values)
        except ChromalabError as error:
            raise ChromalabError(f"{path}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)

    # --- dotted access ----------------------------------------------------------------
    def get(self, path: str) -> Any:
        node: Any = self
        for part in path.split("."):
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        return node

    def set(self, path: str, value: Any) -> None:
        """Set ``a.b.c`` to ``value``, converting strings to the field's type."""
        parts = path.split(".")
        node: Any = self
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, dict):
                node = node.setdefault(part, {})
            elif dataclasses.is_dataclass(node) and part in _field_names(node):
                node = getattr(node, part)
            else:
                raise ChromalabError(f"unknown option {'.'.join(parts[: depth + 1])!r}")
        leaf = parts[-1]
        if isinstance(node, dict):  # free-form kwargs: parse YAML scalars
            node[leaf] = _parse_scalar(value)
            return
        if not dataclasses.is_dataclass(node) or leaf not in _field_names(node):
            raise ChromalabError(f"unknown option {path!r}")
        current = getattr(node, leaf)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ChromalabError(f"option {path!r} is a section; give it a mapping")
            for sub, sub_value in flatten(value).items():
                self.set(f"{path}.{sub}", sub_value)
            return
        setattr(node, leaf, validate_option(type(node), leaf, path, value))


def _field_names(node: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(node)}


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; 'kwargs' mappings stay whole at their own level."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("kwargs", "d_kwargs"):
            flat.update(flatten(value, f"{path}."))
        elif isinstance(value, dict):
            for sub_key, sub_value in value.items():
                flat[f"{path}.{sub_key}"] = sub_value
            if not value:
                flat[path] = {}
        else:
            flat[path] = value
    return flat


def _parse_scalar(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


@functools.cache
def _field_adapter(section: type, name: str) -> tuple[TypeAdapter, Any]:
    hint = typing.get_type_hints(section, include_extras=True)[name]
    return TypeAdapter(hint), hint


def _takes_text(hint: Any) -> bool:
    """Whether a field is text (or text or None): its values are not read as YAML scalars."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, type(int | None)) else (hint,)
    bare = [typing.get_args(o)[0] if typing.get_origin(o) is Annotated else o for o in options]
    return str in bare


def validate_option(section: type, name: str, path: str, value: Any) -> Any:
    """``value`` checked and converted by the field's declared type; one line if it does not fit."""
    adapter, hint = _field_adapter(section, name)
    # Text options keep the user's text: YAML would read "1:30:00:00" (a time limit) as the
    # base-60 integer 5400, and a folder named "2024" as a number; "null" still means None.
    # Other options parse as YAML scalars ("1e-3", "[0.5, 0.999]", "true").
    if not (isinstance(value, str) and _takes_text(hint)) or _parse_scalar(value) is None:
        value = _parse_scalar(value)
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        problem = error.errors()[0]
        kind = _choice_kind(hint)
        if kind and problem["type"] == "literal_error" and isinstance(value, str):
            choices = [c for c in typing.get_args(_literal_of(hint)) if isinstance(c, str)]
            raise ChromalabError(f"option {path}: {unknown_name_message(kind, value, choices)}") from None
        expected = problem["msg"].removeprefix("Input should be ").removeprefix("String should ")
        raise ChromalabError(f"option {path}={value!r}: expected {expected}") from None


def _literal_of(hint: Any) -> Any:
    """The Literal in a field's type (``Discriminator | None`` -> ``Discriminator``), or None."""
    if typing.get_origin(hint) is Literal:
        return hint
    if typing.get_origin(hint) in (typing.Union, type(int | None)):
        return next((arm for arm in typing.get_args(hint) if typing.get_origin(arm) is Literal), None)
    return None


def _choice_kind(hint: Any) -> str | None:
    literal = _literal_of(hint)
    return CHOICE_KINDS.get(literal) if literal is not None else None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
