"""Training configuration: typed sections, loaded from YAML, overridden from the command line.

Every option has a dotted path (``optim.lr``, ``gan.l1_weight``, ``model.kwargs.depth``) that
works the same in YAML files, in ``--set path=value`` and in sweeps. Unknown paths are errors,
so a typo never silently trains the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chromalab.errors import ChromalabError


@dataclass
class ModelConfig:
    name: str = "unet"
    kwargs: dict[str, Any] = field(default_factory=dict)  # the constructor's own options
    color_space: str | None = None  # None: the model's registered default
    init_from: str | None = None  # start from this model's weights (run folder, file, "default")


@dataclass
class DataConfig:
    path: str = ""  # a photo folder (recursive)
    size: int = 128  # training crop size
    batch_size: int = 32
    val_fraction: float = 0.05
    seed: int = 0
    workers: int | None = None  # None: cores - 1
    cache: bool = False  # keep decoded photos in a memory-mapped array
    limit: int | None = None  # use at most this many training photos
    min_crop_scale: float = 0.5  # random resized crop: smallest area fraction
    mood_augment: bool = False  # training-time hue shifts of the targets (control issue)


@dataclass
class LossConfig:
    pixel: str = "l1"  # l1, l2, huber, l1+l2
    huber_delta: float = 1.0
    space: str = "native"  # native (the model's color space) or rgb (after Lab -> RGB)
    perceptual: str | None = None  # stlpips or effnet
    perceptual_weight: float = 0.1


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.02  # cosine decays to lr * min_lr_ratio
    grad_clip: float | None = 1.0
    freeze_encoder_epochs: int = 0  # keep a pretrained encoder (net.encoder) fixed this long


@dataclass
class TrainerConfig:
    epochs: int = 10
    max_steps: int = -1
    # Wall-clock limit, Lightning's "DD:HH:MM:SS" (e.g. "00:01:40:00"): equal-time comparisons.
    # The LR schedule is still laid out over `epochs`; pick epochs that roughly fill the time.
    max_time: str | None = None
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    # auto: bf16-mixed where the processor has bf16 units (AMX, AVX-512 BF16, recent GPUs), else
    # 32-true; chromalab.precision says why. Any Lightning precision is accepted as well.
    precision: str = "auto"
    patience: int | None = None  # early stopping on val/loss, in validation rounds
    val_every: float = 1.0  # validate every N epochs (int) or fraction of an epoch (float < 1)
    log_every: int = 10
    samples: int = 8  # validation photos in the sample grid
    # Also keep the weights every N epochs (checkpoints/epochNNN.ckpt): a GAN's best epoch is
    # chosen afterwards by FID, which its validation L1 does not track.
    snapshot_every: int | None = None
    limit_val_batches: float | int = 1.0
    progress: bool = True


@dataclass
class GanConfig:
    # Setting a discriminator turns any regression generator into a pix2pix-style GAN.
    discriminator: str | None = None  # patch, pixel, critic, multiscale, unet
    loss: str = "vanilla"  # vanilla, lsgan, wgan-gp, hinge
    l1_weight: float = 100.0
    real_label: float = 1.0  # one-sided label smoothing: e.g. 0.9
    fake_label: float = 0.0
    n_critic: int = 1
    gp_weight: float = 10.0
    d_lr: float | None = None  # None: optim.lr
    g_lr: float | None = None
    pretrain_epochs: int = 0  # L1-only generator epochs before the adversarial phase
    d_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class VaeConfig:
    beta: float = 0.001


@dataclass
class DiffusionConfig:
    timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    sampler: str = "ddim"  # ddpm or ddim
    steps: int = 50
    prediction_type: str = "v_prediction"  # v_prediction, epsilon or sample (see models/diffusion.py)


@dataclass
class ClassifyConfig:
    sigma: float = 5.0
    neighbours: int = 5
    rebalance_lambda: float = 0.5
    temperature: float = 0.38
    prior_photos: int = 500  # training photos counted for the class-rebalancing prior


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
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as error:
            raise ChromalabError(f"{path}: cannot read config ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise ChromalabError(f"{path}: invalid YAML ({error})".replace("\n", " ")) from None
        if not isinstance(values, dict):
            raise ChromalabError(f"{path}: a config must be a mapping of sections")
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
        if _declared_type(node, leaf) == "str | None" and isinstance(value, str) and _parse_scalar(value) is not None:
            # Text options keep the user's text: YAML would read "1:30:00:00" (a time limit)
            # as the base-60 integer 5400, and a folder named "2024" as a number.
            setattr(node, leaf, value)
            return
        setattr(node, leaf, _coerce(path, value, current))


def _field_names(node: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(node)}


def _declared_type(node: Any, name: str) -> str:
    """The field's annotation as written (this module's annotations are strings)."""
    return str(next(f.type for f in dataclasses.fields(node) if f.name == name))


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


def _coerce(path: str, value: Any, current: Any) -> Any:
    value = _parse_scalar(value)
    if value is None or current is None:
        return value
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            raise ValueError
        if isinstance(current, int) and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                return value  # e.g. trainer.val_every = 0.5
            return int(value)
        if isinstance(current, float) and not isinstance(value, bool):
            return float(value)
        if isinstance(current, tuple):
            return tuple(float(v) for v in value)
        if isinstance(current, str):
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ChromalabError(
        f"option {path!r} expects {type(current).__name__}, got {value!r}"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
