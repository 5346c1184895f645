"""The Lightning DataModule: a photo folder -> stable train/val split -> batched loaders."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from chromalab.data.dataset import PhotoDataset, default_workers
from chromalab.data.folder import FolderIndex, index_folder
from chromalab.errors import ChromalabError

log = logging.getLogger(__name__)


class PhotoDataModule(L.LightningDataModule):
    """Color photos from a folder tree, split stably into training and validation sets."""

    def __init__(
        self,
        data: str | Path,
        size: int = 128,
        batch_size: int = 32,
        val_fraction: float = 0.05,
        seed: int = 0,
        workers: int | None = None,
        cache: bool = False,
        limit: int | None = None,
        order_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.data = str(data)
        self.size = size
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed  # the validation split
        # The order of the training photos; apart from the split so that a run continued with
        # another seed sees other photos first, from the same split (None: ``seed``).
        self.order_seed = seed if order_seed is None else order_seed
        self.workers = default_workers() if workers is None else workers
        self.cache = cache
        self.limit = limit
        self.index: FolderIndex | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.index = index_folder(self.data)
        log.info(self.index.summary())
        for path, reason in list(self.index.unreadable.items())[:20]:
            log.warning("skipped %s: %s", path, reason)
        train, val = self.index.split(self.val_fraction, self.seed)
        if self.limit:
            train, val = train[: self.limit], val[: max(1, self.limit // 10)]
        if not train:
            raise ChromalabError(f"{self.data}: no usable color photos for training")
        if not val:  # tiny folders: validate on a training photo rather than on nothing
            val = train[:1]
        self.train_set = PhotoDataset(train, self.size, cache=self.cache)
        self.val_set = PhotoDataset(val, self.size, cache=self.cache)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) > self.batch_size,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.order_seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return self._loader(self.val_set, shuffle=False)
