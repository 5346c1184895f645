"""The shared base of all training objectives (LightningModules) and their registry.

A batch of uint8 RGB photos arrives; ``prepare_batch`` augments it (training only) and splits
it into the model input (normalized L) and the target (the chroma of the model's color
space). Subclasses define only the loss: regression, adversarial, variational, diffusion,
classification. Networks stay plain nn.Modules (chromalab.models).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import lightning as L
import torch
from torch import nn

from chromalab.checkpoint import ModelSpec
from chromalab.color import denormalize_l, get_color_space, normalize_l, rgb_to_l_norm, uint8_to_float
from chromalab.data.augment import augment, training_augmentation
from chromalab.precision import channels_last, depthwise_in_fp32, full_precision
from chromalab.registry import Registry
from chromalab.training.config import TrainConfig


def _import_objectives() -> None:
    # Each module of chromalab.training that defines an objective registers it on import.
    import importlib
    import pkgutil

    import chromalab.training as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"chromalab.training.{module.name}")


OBJECTIVES: Registry[type["ColorizationObjective"]] = Registry("training objective", load=_import_objectives)


def register_objective(name: str, description: str) -> Callable[[type], type]:
    return OBJECTIVES.register(name, description)


def objective_class(name: str) -> type["ColorizationObjective"]:
    """The objective registered as ``name``; an unknown name is a one-line UnknownNameError."""
    return OBJECTIVES.get(name)


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio``."""

    def multiplier(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier


class ColorizationObjective(L.LightningModule):
    """Base LightningModule: batch preparation, optimizer and schedule, sample predictions."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        # The whole resolved config is the checkpoint's hyper-parameters: enough to rebuild.
        self.save_hyperparameters({"config": config})
        self.cfg = TrainConfig.from_dict(config)
        self.spec = ModelSpec.from_train_config(config)
        self.space = get_color_space(self.spec.color_space)
        self.net = self.build_network()
        self.augmentation = training_augmentation(self.cfg.data.size, self.cfg.data.min_crop_scale)

    def build_network(self) -> nn.Module:
        # A run started from a trained model of the same family (model.init_from) overwrites
        # every weight; one of another family may leave pretrained parts as they are.
        source = self.cfg.model.init_from
        if not source:
            return self.spec.build()
        from chromalab.checkpoint import read_spec
        from chromalab.errors import ChromalabError

        try:
            same_family = read_spec(source).name == self.spec.name
        except ChromalabError:
            same_family = True  # unreadable: training stops at initialize_weights, with the reason
        return self.spec.build(weights_follow=same_family)

    def on_fit_start(self) -> None:
        # Channels-last weights (and inputs, below): oneDNN's fastest convolution layout on CPU.
        self.to(memory_format=torch.channels_last)
        depthwise_in_fp32(self)  # under bf16 autocast on a CPU; a no-op in fp32

    # --- data -------------------------------------------------------------------------
    @full_precision  # color conversion in fp32 even inside a bf16 training step
    def prepare_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 (B, 3, H, W) -> (L input, chroma target, float RGB), augmented when training."""
        rgb = uint8_to_float(images)
        if self.training:
            rgb = augment(rgb, self.augmentation)
        l_norm = rgb_to_l_norm(rgb)
        if self.training and self.cfg.data.damage > 0:
            l_norm = self.damage_input(l_norm)
        if self.training and self.cfg.data.mood_augment:
            # Hue-shifted targets (docs/controls-and-video.md): the input L comes from the
            # untouched photo, the target (and the RGB handed on) from the hue-rotated one.
            from chromalab.inference.controls import mood_shift

            shifted = mood_shift(rgb)
            return channels_last(l_norm), self.space.target(shifted), shifted
        return channels_last(l_norm), self.space.target(rgb), rgb

    def damage_input(self, l_norm: torch.Tensor) -> torch.Tensor:
        """Old-photo damage (chromalab.data.damage) of the input L only: targets stay clean.

        The batch's generator is seeded from the global RNG, which Lightning seeds with the
        run's seed, so a run's damage is reproducible.
        """
        from chromalab.data.damage import OldPhotoDamage, damage_lightness

        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        recipe = OldPhotoDamage(probability=self.cfg.data.damage)
        damaged = damage_lightness(denormalize_l(l_norm).cpu(), generator, recipe)
        return normalize_l(damaged.to(l_norm.device))

    @torch.no_grad()
    def predict_ab(self, l_norm: torch.Tensor, **options: Any) -> torch.Tensor:
        """Normalized a*b* for a batch of L (what the sample grids and colorize show)."""
        prediction = self.net.predict(l_norm, **options)
        return self.space.to_ab(l_norm, prediction)

    # --- optimization -----------------------------------------------------------------
    def make_optimizer(self, parameters: Any, lr: float | None = None) -> torch.optim.Optimizer:
        optim = self.cfg.optim
        return torch.optim.AdamW(
            parameters, lr=lr or optim.lr, weight_decay=optim.weight_decay, betas=tuple(optim.betas)
        )

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        total = int(self.trainer.estimated_stepping_batches) if self._trainer else 1000
        schedule = warmup_cosine(self.cfg.optim.warmup_steps, total, self.cfg.optim.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"scheduler": scheduler, "interval": "step"}

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer(self.net.parameters())
        return {"optimizer": optimizer, "lr_scheduler": self.make_scheduler(optimizer)}
