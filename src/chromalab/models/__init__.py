"""Networks: plain nn.Modules from normalized L to colors. One module per model family."""

from chromalab.models.base import ColorizationNet
from chromalab.models.registry import (
    count_parameters,
    create_model,
    list_models,
    model_entry,
    register_model,
)

__all__ = [
    "ColorizationNet",
    "count_parameters",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
]
