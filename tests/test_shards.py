"""Tar shards: writing (prepare --shards), reading, splitting, and training on them."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from chromalab.data import shards as shards_module
from chromalab.data.dataset import PhotoDataset
from chromalab.data.folder import in_validation_split, list_images
from chromalab.data.prepare import PrepareOptions, prepare
from chromalab.data.shards import (
    ShardDataModule,
    ShardDataset,
    expand_braces,
    is_shard_source,
    resolve_shards,
    shard_key,
)
from chromalab.errors import ChromalabError


@pytest.fixture(scope="module")
def prepared(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photo_dir (12 photos) prepared at 32 px into shards of 5 photos: 3 shards."""
    dst = tmp_path_factory.mktemp("prepared")
    summary = prepare(photo_dir, dst, PrepareOptions(size=32, min_size=16, shards=5), workers=1, progress=False)
    assert summary["shard_pattern"] == str(dst / "shards" / "shard-{000000..000002}.tar")
    return dst


def pattern(prepared: Path) -> str:
    return str(prepared / "shards" / "shard-{000000..000002}.tar")


def as_bytes(tensors) -> list[bytes]:
    return sorted(t.numpy().tobytes() for t in tensors)


def test_brace_expansion_and_names(tmp_path: Path) -> None:
    assert expand_braces("s-{000008..000011}.tar") == ["s-000008.tar", "s-000009.tar", "s-000010.tar", "s-000011.tar"]
    assert expand_braces("{a,b}/x-{1..2}.tar") == ["a/x-1.tar", "a/x-2.tar", "b/x-1.tar", "b/x-2.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    assert shard_key("a/b/photo.v2.jpg") == "a/b/photo_v2" and shard_key("x.png") == "x"
    assert is_shard_source("d/shard-{000000..000003}.tar") and not is_shard_source("photos/")
    with pytest.raises(ChromalabError, match="no such shard"):
        resolve_shards(str(tmp_path / "shard-{000000..000001}.tar"))


def test_shards_hold_every_kept_photo(prepared: Path) -> None:
    files = sorted((prepared / "shards").glob("shard-*.tar"))
    assert [f.name for f in files] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    names = []
    for file in files:
        with tarfile.open(file) as tar:
            members = tar.getnames()
            assert len(members) == 2 * (5 if file != files[-1] else 2)  # image + json per photo
            names += members
            first = json.loads(tar.extractfile(members[1]).read())
            assert members[1] == members[0].rsplit(".", 1)[0] + ".json" and first["source"].endswith((".png", ".jpg"))
    images = sorted(n for n in names if n.endswith(".jpg"))
    loose = sorted(p.relative_to(prepared).as_posix() for p in list_images(prepared))
    assert images == loose  # member names are the prepared folder's relative paths


def test_dataset_yields_the_same_tensors_as_photo_dataset(prepared: Path) -> None:
    dataset = ShardDataset(pattern(prepared), size=32)
    tensors = list(dataset)
    assert len(tensors) == len(dataset) == 12
    assert all(t.shape == (3, 32, 32) and t.dtype == torch.uint8 for t in tensors)
    reference = PhotoDataset(list_images(prepared), 32)
    assert as_bytes(tensors) == as_bytes(reference[i] for i in range(len(reference)))
    assert torch.equal(dataset[3], tensors[3])  # previews index the unshuffled stream


def test_validation_split_is_the_folder_rule(prepared: Path) -> None:
    fraction = 0.3
    train = ShardDataset(pattern(prepared), size=32, split="train", val_fraction=fraction)
    val = ShardDataset(pattern(prepared), size=32, split="val", val_fraction=fraction)
    paths = list_images(prepared)
    in_val = [in_validation_split(p.relative_to(prepared).as_posix(), fraction, 0) for p in paths]
    assert 0 < sum(in_val) < len(paths)
    assert (train.total, val.total) == (len(paths) - sum(in_val), sum(in_val))
    expected_val = PhotoDataset([p for p, v in zip(paths, in_val) if v], 32)
    assert as_bytes(val) == as_bytes(expected_val[i] for i in range(len(expected_val)))
    assert not set(as_bytes(train)) & set(as_bytes(val))


@pytest.mark.parametrize("files", [3, 1])  # as many shards as readers or more; and fewer
def test_workers_and_ranks_share_the_samples(prepared: Path, files: int, monkeypatch: pytest.MonkeyPatch) -> None:
    source = pattern(prepared) if files == 3 else str(prepared / "shards" / "shard-000000.tar")
    everything = as_bytes(ShardDataset(source, size=32))
    # Two DataLoader workers in one process: disjoint, together everything, exactly len(dataset).
    seen = []
    for worker in range(2):
        monkeypatch.setattr(shards_module, "get_worker_info", lambda w=worker: SimpleNamespace(id=w, num_workers=2))
        seen += as_bytes(ShardDataset(source, size=32))
    assert sorted(seen) == everything
    # Two DDP ranks: each yields exactly len() samples, so neither waits for the other.
    monkeypatch.setattr(shards_module, "get_worker_info", lambda: None)
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(shards_module, "distributed_rank", lambda r=rank: (r, 2))
        dataset = ShardDataset(source, size=32, shuffle_buffer=4)
        per_rank.append(as_bytes(dataset))
        assert len(per_rank[-1]) == len(dataset) == -(-len(everything) // 2)
    assert set(per_rank[0]) | set(per_rank[1]) == set(everything)


def test_whole_batches_per_worker(prepared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 12 photos, batch 5, 2 workers, drop_last: the loader's len is 2 batches, so the workers
    # must yield 5 + 5 samples; without drop_last, 3 batches, fetched from workers 0, 1, 0:
    # 5 + 2 (the partial last batch) and 5.
    for drop_last, expected in ((True, [5, 5]), (False, [7, 5])):
        counts = []
        for worker in range(2):
            monkeypatch.setattr(shards_module, "get_worker_info", lambda w=worker: SimpleNamespace(id=w, num_workers=2))
            dataset = ShardDataset(pattern(prepared), size=32, batch_size=5, drop_last=drop_last)
            counts.append(sum(1 for _ in dataset))
        assert counts == expected


def test_seeded_shuffle_changes_each_epoch(prepared: Path) -> None:
    first = ShardDataset(pattern(prepared), size=32, shuffle_buffer=6, seed=1)
    second = ShardDataset(pattern(prepared), size=32, shuffle_buffer=6, seed=1)
    epoch0 = [t.numpy().tobytes() for t in first]
    assert epoch0 == [t.numpy().tobytes() for t in second]  # same seed, same order
    epoch1 = [t.numpy().tobytes() for t in first]
    assert epoch1 != epoch0 and sorted(epoch1) == sorted(epoch0)
    plain = [t.numpy().tobytes() for t in ShardDataset(pattern(prepared), size=32)]
    assert plain != epoch0 and sorted(plain) == sorted(epoch0)


def test_order_seed_reshuffles_the_training_shards_and_keeps_the_split(prepared: Path) -> None:
    def train(**seeds: int) -> list[bytes]:
        return [t.numpy().tobytes() for t in ShardDataset(pattern(prepared), size=32, split="train",
                                                          val_fraction=0.3, shuffle_buffer=6, **seeds)]

    order = train(seed=1)
    assert train(seed=1, order_seed=1) == order
    other = train(seed=1, order_seed=2)
    assert other != order and sorted(other) == sorted(order)  # the same photos: the split is the seed's


def test_damaged_shard_is_read_up_to_the_damage(prepared: Path, tmp_path: Path) -> None:
    data = (prepared / "shards" / "shard-000000.tar").read_bytes()
    damaged = tmp_path / "shard-000000.tar"
    damaged.write_bytes(data[: len(data) // 2])  # cut in the middle of a member
    dataset = ShardDataset(str(damaged), size=32)
    assert 1 <= dataset.total < 5
    assert len(list(dataset)) == dataset.total
    (tmp_path / "garbage.tar").write_bytes(b"not a tar file" * 100)
    with pytest.raises(ChromalabError, match="not a readable tar shard"):
        ShardDataset(str(tmp_path / "garbage.tar"), size=32)


def test_training_on_shards_writes_a_model(prepared: Path, tmp_path: Path) -> None:
    from chromalab.training.config import TrainConfig
    from chromalab.training.trainer import build_datamodule, train

    config = TrainConfig.from_dict({
        "model": {"name": "unet-tiny"},
        "data": {"path": pattern(prepared), "size": 32, "batch_size": 4, "workers": 0, "val_fraction": 0.3},
        "trainer": {"epochs": 1, "progress": False, "accelerator": "cpu", "devices": 1, "samples": 2},
        "optim": {"warmup_steps": 1},
        "out": str(tmp_path / "run"),
    })
    assert isinstance(build_datamodule(config), ShardDataModule)
    run = train(config)
    assert (run / "model.safetensors").stat().st_size > 0
    assert (run / "samples" / "latest.png").is_file()  # validation ran, previews came from val_set
    assert "val/loss" in (run / "logs" / "metrics.csv").read_text()
