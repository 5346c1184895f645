"""WebDataset-style tar shards: writing them (``chromalab prepare --shards``) and training on them.

A shard is a plain, uncompressed tar file. Each sample is a group of consecutive members that
share a key: one image, ``<key>.jpg`` (or ``.png``), and ``<key>.json`` (its source path and
size). The key is everything before the first dot of the member's base name, as in
WebDataset, so these shards also load with the ``webdataset`` package.

Why shards: a million small files make every epoch a million random file opens. A few hundred
large tar files are read sequentially, copy well between machines and object stores, and split
naturally across DataLoader workers and DDP ranks.

Why not the ``webdataset`` package for writing and reading: the format is ordinary tar, which
the standard ``tarfile`` module writes and streams; the reader needs only what chromalab uses
(split by key, seeded buffer shuffle, rank/worker split, equal lengths per rank), about as much
code as configuring webdataset's pipeline would take, and one dependency fewer to pin.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import io
import json
import logging
import math
import os
import random
import re
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from chromalab.atomic import atomic_target
from chromalab.data.dataset import default_workers
from chromalab.data.folder import in_validation_split
from chromalab.data.images import resize_center_crop
from chromalab.errors import ChromalabError

log = logging.getLogger(__name__)

SHARD_NAME = "shard-{index:06d}.tar"
SHARD_PATTERN = re.compile(r"shard-(\d{6})\.tar$")
IMAGE_MEMBER_TYPES = ("jpg", "jpeg", "png", "webp")
INDEX_FILE = "index.json"

# Lightning warns about any IterableDataset with __len__ used with several workers; this one
# splits its shards across workers itself (see ShardDataset.__iter__), so the length holds.
warnings.filterwarnings("ignore", message=r".*IterableDataset.*has `__len__` defined.*")


# --- Names and patterns -------------------------------------------------------------------


def shard_key(relative_output: str) -> str:
    """The sample key of a prepared photo: its relative path without the extension.

    Dots in the base name become underscores, because a WebDataset key ends at the first dot.
    """
    path = PurePosixPath(relative_output)
    stem = path.stem.replace(".", "_")
    return stem if path.parent == PurePosixPath(".") else f"{path.parent.as_posix()}/{stem}"


def shard_pattern(folder: str | os.PathLike[str], count: int) -> str:
    """The brace pattern naming ``count`` shards in ``folder`` (what ``--data`` takes)."""
    if count <= 1:
        return str(Path(folder) / SHARD_NAME.format(index=0))
    return str(Path(folder) / f"shard-{{{0:06d}..{count - 1:06d}}}.tar")


def split_member_name(name: str) -> tuple[str, str]:
    """``"a/b/photo01.jpg"`` -> (``"a/b/photo01"``, ``"jpg"``): WebDataset's key rule."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


_BRACES = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000000..000003}`` (zero-padded ranges) and ``{a,b}`` lists, like bash.

    Written here because the usual package (braceexpand) is not a dependency and the rule
    is a few lines.
    """
    match = _BRACES.search(pattern)
    if not match:
        return [pattern]
    head, body, tail = pattern[: match.start()], match.group(1), pattern[match.end() :]
    range_match = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
    if range_match:
        first, last = range_match.groups()
        width = len(first) if first.startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        options = [str(n).zfill(width) for n in range(int(first), int(last) + step, step)]
    else:
        options = body.split(",")
    return [expanded for option in options for expanded in expand_braces(head + option + tail)]


def is_shard_source(path: str | os.PathLike[str]) -> bool:
    """Whether a ``--data`` value names tar shards (a file, a brace pattern or a glob)."""
    return str(path).rstrip("/").lower().endswith(".tar")


def resolve_shards(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The shard files a pattern (braces, then globs) or a list of paths names, sorted."""
    patterns = [str(source)] if isinstance(source, (str, os.PathLike)) else [str(s) for s in source]
    paths: list[Path] = []
    for pattern in patterns:
        for expanded in expand_braces(pattern):
            is_glob = any(char in expanded for char in "*?[")
            matches = sorted(glob.glob(expanded)) if is_glob else [expanded]
            paths.extend(Path(m) for m in matches)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ChromalabError(f"{missing[0]}: no such shard{more}")
    if not paths:
        raise ChromalabError(f"{source}: no shards match")
    return sorted(dict.fromkeys(paths))


# --- Writing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardItem:
    key: str  # sample key (see shard_key)
    path: Path  # the prepared image file
    metadata: dict[str, Any]  # stored as <key>.json


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # identical inputs give byte-identical shards
    tar.addfile(info, io.BytesIO(data))


def _fingerprint(items: Sequence[ShardItem], per_shard: int) -> str:
    digest = hashlib.sha1(f"{per_shard}".encode())
    for item in items:
        stat = item.path.stat()
        digest.update(f"\n{item.key}|{item.path.suffix}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def write_shards(
    items: Sequence[ShardItem], folder: Path, per_shard: int, seed: int = 0, progress: bool = True
) -> list[Path]:
    """Pack ``items`` into ``folder/shard-000000.tar`` ... with ``per_shard`` photos each.

    Items are shuffled (seeded) before packing: sorted paths are grouped by folder, often by
    class, and a training run that reads a few shards at a time should see a mix. Each shard
    is written to a temporary file and renamed, so a shard that exists is complete. When the
    items and their files are unchanged since the last packing (``index.json``), nothing is
    rewritten; shards left over from a larger earlier packing are removed.
    """
    if per_shard < 1:
        raise ChromalabError(f"--shards {per_shard}: give the number of photos per shard (>= 1)")
    folder.mkdir(parents=True, exist_ok=True)
    order = list(items)
    random.Random(seed).shuffle(order)
    count = math.ceil(len(order) / per_shard)
    names = [SHARD_NAME.format(index=i) for i in range(count)]
    fingerprint = _fingerprint(order, per_shard)
    index_path = folder / INDEX_FILE
    if index_path.is_file() and all((folder / n).is_file() for n in names):
        try:
            if json.loads(index_path.read_text()).get("fingerprint") == fingerprint:
                return [folder / n for n in names]
        except (OSError, ValueError):
            pass
    from rich.progress import track

    written: list[Path] = []
    for index in track(range(count), description="Writing shards", disable=not progress):
        batch = order[index * per_shard : (index + 1) * per_shard]
        target = folder / names[index]
        # The default (pax) format writes plain ustar headers unless a name needs more.
        with atomic_target(target) as temporary, tarfile.open(temporary, "w") as tar:
            for item in batch:
                _add_member(tar, item.key + item.path.suffix.lower(), item.path.read_bytes())
                _add_member(tar, item.key + ".json", json.dumps(item.metadata, sort_keys=True).encode())
        written.append(target)
    for stale in folder.iterdir():
        match = SHARD_PATTERN.search(stale.name)
        if match and int(match.group(1)) >= count:
            stale.unlink()
    index_path.write_text(json.dumps({
        "fingerprint": fingerprint, "photos": len(order), "photos_per_shard": per_shard,
        "shards": [{"name": n, "photos": min(per_shard, len(order) - i * per_shard)} for i, n in enumerate(names)],
    }, indent=1))
    return written


# --- Reading ------------------------------------------------------------------------------


def scan_keys(path: Path) -> list[str]:
    """Image member names of a shard (``key.ext``), from its headers only.

    A file that is no tar at all is an error; a truncated shard is reported and counted up
    to the damage (training goes on without the rest). Remembered per process while the file
    is unchanged: the training and the validation set both need it.
    """
    stat = Path(path).stat()
    return list(_scan_keys(str(path), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=4096)
def _scan_keys(path_name: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    path = Path(path_name)
    names: list[str] = []
    try:
        tar = tarfile.open(path, mode="r:")  # seekable: skips over the data
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ChromalabError(f"{path}: not a readable tar shard ({error})") from None
    with tar:
        try:
            for member in tar:
                if member.offset_data + member.size > size:
                    raise tarfile.ReadError("unexpected end of data")  # header whole, data cut
                if member.isfile() and split_member_name(member.name)[1] in IMAGE_MEMBER_TYPES:
                    names.append(member.name)
        except (tarfile.TarError, OSError, EOFError) as error:
            log.warning("%s: damaged shard, using the %d photos before the damage (%s)", path, len(names), error)
    return tuple(names)


def decode_image(data: bytes, size: int) -> torch.Tensor:
    """(3, size, size) uint8, shorter side resized and center-cropped, as PhotoDataset does."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        image = ImageOps.exif_transpose(image).convert("RGB")
    array = np.asarray(resize_center_crop(image, size), dtype=np.uint8)
    # Transposed by numpy: torch's contiguous() on a small uint8 tensor wakes its thread pool,
    # which costs more than the decoding on a busy machine.
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of this process under torch.distributed, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _buffer_shuffle(items: Iterator[Any], buffer: int, rng: random.Random) -> Iterator[Any]:
    """Shuffle a stream through a buffer of ``buffer`` items (reservoir-style swap-out)."""
    pool: list[Any] = []
    for item in items:
        if len(pool) < buffer:
            pool.append(item)
            continue
        slot = rng.randrange(buffer)
        pool[slot], item = item, pool[slot]
        yield item
    rng.shuffle(pool)
    yield from pool


def _padded(samples: Iterator[torch.Tensor], count: int) -> Iterator[torch.Tensor]:
    """Exactly ``count`` items: photos that failed to decode are replaced by a repeat of the
    last good one, so that the batch count Lightning expects still holds."""
    produced, last = 0, None
    for last in samples:
        yield last
        produced += 1
    while last is not None and produced < count:
        yield last
        produced += 1


class ShardDataset(IterableDataset):
    """Photos from tar shards as (3, size, size) uint8 tensors, like ``PhotoDataset``.

    * ``split``: "train", "val" or "all". A sample is in validation when
      ``in_validation_split(member name, val_fraction, seed)``: the same stable rule the folder
      split uses, applied to ``<key>.<ext>``, which is the photo's relative path in the
      prepared folder, so a folder and its shards split the same way.
    * Each epoch's sequence of samples (shard after shard; the shard order reshuffled each
      epoch, seeded, when ``shuffle_buffer`` > 0) is cut into consecutive stretches, one per
      DDP rank and DataLoader worker: disjoint, together the whole split, and each reader
      opens only the shards its stretch covers. Samples then pass through a seeded shuffle
      buffer of ``shuffle_buffer`` photos. The shard headers are read once, at construction,
      to count the samples (a header read per photo, no data).
    * ``len()`` is the number of samples per rank (``limit`` caps the total). Each epoch,
      every rank and worker yields exactly its share, in whole batches of ``batch_size`` (give
      the DataLoader's, and its ``drop_last``), so the loader yields exactly
      ``len(DataLoader)`` batches: Lightning counts on that to end epochs and validate, and no
      DDP rank waits for another. (Under DDP the last rank wraps around to the first photos
      when the count does not divide, as DistributedSampler pads; with ``drop_last`` the few
      photos past the last whole batch wait for another epoch.)
    * The epoch counter advances on each iteration (in each persistent worker); call
      ``set_epoch`` to set it explicitly.
    * Indexing (``dataset[i]``) reads the first samples in shard order and caches them: meant
      for a handful of preview photos (the sample grids), not for training.
    """

    PREVIEW = 16

    def __init__(
        self,
        shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        size: int,
        split: str = "all",
        val_fraction: float = 0.05,
        seed: int = 0,
        shuffle_buffer: int = 0,
        limit: int | None = None,
        batch_size: int = 1,
        drop_last: bool = False,
        order_seed: int | None = None,
    ) -> None:
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be train, val or all, not {split!r}")
        self.shards = resolve_shards(shards)
        self.size = size
        self.split = split
        self.val_fraction = val_fraction
        self.seed = seed  # the validation split
        self.order_seed = seed if order_seed is None else order_seed  # the shuffles
        self.shuffle_buffer = shuffle_buffer
        self.epoch = 0
        self.samples_per_shard = [sum(self._wanted(name) for name in scan_keys(s)) for s in self.shards]
        total = sum(self.samples_per_shard)
        self.total = min(total, limit) if limit else total
        self.limit = limit
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._preview: list[torch.Tensor] = []

    def _wanted(self, member_name: str) -> bool:
        if self.split == "all":
            return True
        return in_validation_split(member_name, self.val_fraction, self.seed) == (self.split == "val")

    def __len__(self) -> int:
        _, world = distributed_rank()
        return math.ceil(self.total / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # --- streaming ----------------------------------------------------------------------
    def _read(self, shard: Path, first: int, stop: int) -> Iterator[torch.Tensor]:
        """Decode the shard's samples (of this split) at positions first .. stop - 1.

        The tar is opened seekable: members before ``first`` and of the other split cost a
        512-byte header read each, not their data.
        """
        position = 0
        try:
            with tarfile.open(shard, mode="r:") as tar:
                for member in tar:
                    if position >= stop:
                        break
                    if not member.isfile() or split_member_name(member.name)[1] not in IMAGE_MEMBER_TYPES:
                        continue
                    if not self._wanted(member.name):
                        continue
                    position += 1
                    if position <= first:
                        continue
                    try:
                        handle = tar.extractfile(member)
                        yield decode_image(handle.read() if handle else b"", self.size)
                    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as error:
                        log.warning("skipping %s:%s: %s", shard, member.name, error)
        except (tarfile.TarError, OSError, EOFError) as error:
            log.warning("%s: damaged shard, read up to the damage (%s)", shard, error)

    def _sequence(self, order: Sequence[int], start: int, count: int) -> Iterator[torch.Tensor]:
        """``count`` samples from position ``start`` of the epoch's sequence (wrapping around).

        The sequence is every sample of the split, shard after shard in ``order``, cut at
        ``total`` (the limit).
        """
        if self.total == 0:
            return
        bounds = np.cumsum([0] + [self.samples_per_shard[i] for i in order])
        position = start % self.total
        while count > 0:
            slot = int(np.searchsorted(bounds, position, side="right")) - 1
            local = position - int(bounds[slot])
            take = min(int(bounds[slot + 1]) - position, count, self.total - position)
            yield from self._read(self.shards[order[slot]], local, local + take)
            count -= take
            position = (position + take) % self.total

    def quota(self, worker: int, workers: int) -> int:
        """Samples this DataLoader worker yields per epoch: its share of whole batches.

        Lightning ends an epoch (and decides to validate) by counting batches, so the workers
        together must yield exactly ``len(DataLoader)`` batches: ``len(self)`` samples cut
        into ``batch_size`` batches (the last one partial unless ``drop_last``), dealt out to
        the workers, which the DataLoader visits in turn.
        """
        per_rank, size = len(self), self.batch_size
        batches = per_rank // size if self.drop_last else math.ceil(per_rank / size)
        quota = (batches // workers + (1 if worker < batches % workers else 0)) * size
        shortfall = batches * size - per_rank
        if not self.drop_last and shortfall > 0 and worker == (batches - 1) % workers:
            quota -= shortfall  # this worker's last batch is the partial one
        return quota

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world = distributed_rank()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = list(range(len(self.shards)))
        if self.shuffle_buffer:
            random.Random(f"{self.order_seed}:{epoch}").shuffle(order)  # the same order on every rank
        # Rank r owns positions [r * len, (r + 1) * len) of the epoch's sequence (the last rank
        # wraps around to the start, as DistributedSampler pads); its workers cut that range
        # into consecutive pieces of their quotas. Every reader reads only its own stretch.
        start = rank * len(self) + sum(self.quota(w, workers) for w in range(worker))
        quota = self.quota(worker, workers)
        samples = _padded(self._sequence(order, start, quota), quota)
        if self.shuffle_buffer:
            me = rank * workers + worker
            samples = _buffer_shuffle(samples, self.shuffle_buffer, random.Random(f"{self.order_seed}:{epoch}:{me}"))
        yield from samples

    # --- previews -----------------------------------------------------------------------
    def __getitem__(self, index: int) -> torch.Tensor:
        if index < 0 or index >= self.total:
            raise IndexError(index)
        if index >= len(self._preview):
            wanted = min(max(index + 1, self.PREVIEW), self.total)
            self._preview = list(self._sequence(range(len(self.shards)), 0, wanted))
            if index >= len(self._preview):
                raise IndexError(index)
        return self._preview[index]


class ShardDataModule(L.LightningDataModule):
    """Training and validation photos from tar shards; the same options as PhotoDataModule.

    ``val_set`` is the validation ShardDataset, which also answers ``val_set[i]`` for the first
    few photos (what the SampleGrid callback shows). ``cache`` is accepted and ignored: shards
    hold photos already resized, read sequentially.
    """

    def __init__(
        self,
        data: str | os.PathLike[str] | Sequence[str],
        size: int = 128,
        batch_size: int = 32,
        val_fraction: float = 0.05,
        seed: int = 0,
        workers: int | None = None,
        cache: bool = False,
        limit: int | None = None,
        shuffle_buffer: int = 1000,
        order_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.size = size
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed  # the validation split
        self.order_seed = order_seed  # the training order (None: ``seed``)
        self.workers = default_workers() if workers is None else workers
        self.limit = limit
        self.shuffle_buffer = shuffle_buffer
        self.train_set: ShardDataset | None = None
        self.val_set: ShardDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        common = dict(size=self.size, val_fraction=self.val_fraction, seed=self.seed, batch_size=self.batch_size)
        self.train_set = ShardDataset(self.data, split="train", shuffle_buffer=self.shuffle_buffer,
                                      limit=self.limit, order_seed=self.order_seed, **common)
        if self.train_set.total == 0:
            raise ChromalabError(f"{self.data}: no training photos in these shards")
        self.train_set.drop_last = len(self.train_set) > self.batch_size
        val_limit = max(1, self.limit // 10) if self.limit else None
        self.val_set = ShardDataset(self.data, split="val", limit=val_limit, **common)
        if self.val_set.total == 0:  # tiny sets: validate on a training photo rather than on nothing
            self.val_set = ShardDataset(self.data, split="train", limit=1, **common)
        log.info("%d training and %d validation photos in %d shards", self.train_set.total,
                 self.val_set.total, len(self.train_set.shards))

    def _loader(self, dataset: ShardDataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            drop_last=dataset.drop_last,  # the dataset plans its epoch with the same rule
            num_workers=self.workers,
            # Persistent workers keep their dataset copy, so its epoch counter (and with it
            # the shuffle) advances from one epoch to the next.
            persistent_workers=self.workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return self._loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return self._loader(self.val_set)
