"""Networks: plain nn.Modules from normalized L to colors. One module per model family."""

from chromalab.models.base import ColorizationNet
from chromalab.models.registry import (
    MODELS,
    count_parameters,
    create_model,
    list_models,
    model_entry,
    model_names,
    register_model,
)

__all__ = [
    "ColorizationNet",
    "MODELS",
    "count_parameters",
    "create_model",
    "list_models",
    "model_entry",
    "model_names",
    "register_model",
]
