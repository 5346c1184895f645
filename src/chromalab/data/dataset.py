"""Datasets of photos as square uint8 tensors, with an optional decoded cache.

Items are (3, size, size) uint8 RGB: the shorter side resized to ``size`` and center-cropped.
Everything else — random resized crops, flips, the conversion to L and ab — happens on whole
batches in torch (see ``chromalab.data.augment`` and ``chromalab.color``), which is much
faster than per-image numpy work and runs on the accelerator when there is one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from chromalab.data.folder import cache_dir
from chromalab.data.images import BadImageError, open_rgb, resize_center_crop

log = logging.getLogger(__name__)


def load_square(path: Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8 array of a photo, shorter side resized and center-cropped."""
    image = open_rgb(path, draft_size=size)
    return np.array(resize_center_crop(image, size), dtype=np.uint8)


class PhotoDataset(Dataset):
    """Photos at one square size. With ``cache=True`` each photo is decoded once, ever.

    The cache is a uint8 memory-mapped array (N, size, size, 3) plus a "filled" flag per row
    in the user cache directory, keyed by the file list and size. Rows are filled lazily by
    whichever DataLoader worker first decodes the photo, so the first epoch costs what an
    uncached one does and every later epoch (and run) decodes nothing.
    """

    def __init__(self, paths: list[Path], size: int, cache: bool = False) -> None:
        self.paths = [Path(p) for p in paths]
        self.size = size
        self.cache = cache
        self._rows: np.memmap | None = None
        self._filled: np.memmap | None = None
        self._bad: set[int] = set()
        if cache:
            key = hashlib.sha1(
                ("\n".join(str(p) for p in self.paths) + f"|{size}").encode()
            ).hexdigest()[:16]
            self._cache_path = cache_dir() / f"decoded-{key}-{size}.u8"
            self._flags_path = cache_dir() / f"decoded-{key}-{size}.filled"
            self._create_cache_files()

    def _create_cache_files(self) -> None:
        shape = (len(self.paths), self.size, self.size, 3)
        if not self._cache_path.exists() or self._cache_path.stat().st_size != int(np.prod(shape)):
            np.memmap(self._cache_path, dtype=np.uint8, mode="w+", shape=shape).flush()
            np.memmap(self._flags_path, dtype=np.uint8, mode="w+", shape=(len(self.paths),)).flush()

    def _open_cache(self) -> tuple[np.memmap, np.memmap]:
        # Opened lazily so that each DataLoader worker maps the files itself.
        if self._rows is None or self._filled is None:
            shape = (len(self.paths), self.size, self.size, 3)
            self._rows = np.memmap(self._cache_path, dtype=np.uint8, mode="r+", shape=shape)
            self._filled = np.memmap(self._flags_path, dtype=np.uint8, mode="r+", shape=shape[:1])
        return self._rows, self._filled

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_rows"] = state["_filled"] = None
        return state

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> np.ndarray:
        if not self.cache:
            return load_square(self.paths[index], self.size)
        rows, filled = self._open_cache()
        if filled[index]:
            return np.array(rows[index])
        array = load_square(self.paths[index], self.size)
        rows[index] = array
        filled[index] = 1
        return array

    def __getitem__(self, index: int) -> torch.Tensor:
        # A file that broke after indexing (edited, truncated) is reported once and replaced
        # by its neighbour, so a long run never dies on one bad photo.
        for attempt in range(len(self.paths)):
            candidate = (index + attempt) % len(self.paths)
            if candidate in self._bad:
                continue
            try:
                array = self._decode(candidate)
            except BadImageError as error:
                self._bad.add(candidate)
                log.warning("skipping %s", error)
                continue
            # Transposing in numpy is much cheaper than a strided torch copy here.
            return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        raise RuntimeError("no readable photos left in the dataset")

    def fill_cache(self, workers: int = 0) -> None:
        """Decode every photo into the cache now (optional; training fills it lazily)."""
        from torch.utils.data import DataLoader

        for _ in DataLoader(self, batch_size=64, num_workers=workers):
            pass


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))
