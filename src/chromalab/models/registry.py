"""The model registry: ``@register_model`` on a constructor, ``create_model(name, **kwargs)``.

As in timm, each model family lives in its own module and registers small named
constructors; the registry only knows names, descriptions and how a model is trained. It is
a ``chromalab.registry.Registry``, so an unknown name fails like every other choice.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from chromalab.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    name: str
    constructor: Callable[..., nn.Module]
    description: str
    objective: str  # which training objective (chromalab.training.objective.OBJECTIVES) trains it
    color_space: str  # the color space it is trained in unless told otherwise
    pretrained: bool = False  # its constructor takes ``pretrained`` (reads ImageNet weights)


def _import_families() -> None:
    # Every module in chromalab.models registers its models on import.
    import chromalab.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in {"registry", "base", "blocks"}:
            importlib.import_module(f"chromalab.models.{module.name}")


MODELS: Registry[ModelEntry] = Registry("model", load=_import_families)


def register_model(
    name: str, description: str, objective: str = "regression", color_space: str = "lab",
    pretrained: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorator(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(name, constructor, description, objective, color_space, pretrained),
                   description)
        return constructor

    return decorator


def model_entry(name: str) -> ModelEntry:
    """The registered model ``name``; an unknown name is a one-line UnknownNameError."""
    return MODELS.get(name)


def model_names() -> tuple[str, ...]:
    return tuple(sorted(MODELS.names()))


def list_models() -> list[ModelEntry]:
    return [MODELS.get(name) for name in model_names()]


def create_model(name: str, weights_follow: bool = False, **kwargs: Any) -> nn.Module:
    """Build a registered model. ``weights_follow``: trained weights will be loaded into it
    next, so a pretrained part starts random instead of reading its ImageNet weights."""
    entry = model_entry(name)
    if weights_follow and entry.pretrained:
        kwargs = {**kwargs, "pretrained": False}
    return entry.constructor(**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
