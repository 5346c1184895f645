"""Photos in: folders, images, datasets, augmentation. Only this package and inference/ read files."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chromalab.data.datamodule import PhotoDataModule
    from chromalab.data.dataset import PhotoDataset
    from chromalab.data.folder import index_folder, list_images
    from chromalab.data.images import open_rgb

# Imported on first use: the datamodule pulls in Lightning (~3 s), which colorizing a photo
# never needs, and `chromalab colorize` imports this package for its folder listing.
_HOMES = {
    "PhotoDataModule": "chromalab.data.datamodule",
    "PhotoDataset": "chromalab.data.dataset",
    "index_folder": "chromalab.data.folder",
    "list_images": "chromalab.data.folder",
    "open_rgb": "chromalab.data.images",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
