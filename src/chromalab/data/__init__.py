"""Photos in: folders, images, datasets, augmentation. Only this package and inference/ read files."""

from chromalab.data.dataset import PhotoDataset
from chromalab.data.datamodule import PhotoDataModule
from chromalab.data.folder import index_folder, list_images
from chromalab.data.images import open_rgb

__all__ = ["PhotoDataModule", "PhotoDataset", "index_folder", "list_images", "open_rgb"]
