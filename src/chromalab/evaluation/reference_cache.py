"""FID reference statistics of ground-truth photos, kept between evaluations.

Every FID needs the Inception statistics of the real photos as well as those of the model's
outputs: evaluating one model costs two Inception passes over the set, of which the first
gives the same numbers every time the same photos are evaluated (the checkpoint picks, the
sweeps and the studies evaluate one folder again and again). Like pytorch-fid's and clean-fid's
precomputed statistics, the feature sums (``FeatureStatistics``: count, sum, sum of outer
products, float64) are saved after a complete pass and read back the next time: the FID is
the same to the last bit, and the pass is skipped.

The key covers everything the statistics depend on: each photo's resolved path, byte size and
modification time (an edited, added or removed photo changes it), the protocol's size, and the
feature extractor (the Inception file and the backend running it). A file is ~32 MB (the
2048² outer-product sum); they live in ``<cache>/fid-reference/`` and can be deleted at any time.
``CHROMALAB_FID_CACHE=off`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from chromalab.evaluation.fid import FeatureStatistics

log = logging.getLogger(__name__)

CACHE_ENV = "CHROMALAB_FID_CACHE"  # "off" (or 0/no/false) disables the cache
FORMAT = 1  # bump when the saved arrays or the protocol change


def cache_enabled() -> bool:
    return os.environ.get(CACHE_ENV, "on").strip().lower() not in ("off", "0", "no", "false")


def reference_key(paths: Sequence[Path], size: int, extractor: str) -> str:
    """A digest of the photos (path, bytes, mtime), the protocol's size and the extractor."""
    digest = hashlib.sha256(f"chromalab-fid-reference/{FORMAT}|size={size}|{extractor}".encode())
    for path in paths:
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
            digest.update(f"\n{resolved}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError as error:  # an unreadable photo is skipped by the evaluation: key on the reason
            digest.update(f"\n{resolved}|{type(error).__name__}".encode())
    return digest.hexdigest()[:32]


def reference_path(key: str) -> Path:
    from chromalab.data.folder import cache_dir

    return cache_dir() / "fid-reference" / f"{key}.npz"


def load_reference(key: str) -> FeatureStatistics | None:
    """The saved statistics for ``key``, or None (absent, unreadable or of another shape)."""
    path = reference_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            count, total, outer = int(saved["count"]), saved["total"], saved["outer"]
    except (OSError, ValueError, KeyError) as error:
        log.warning("%s: unreadable FID reference cache (%s); computing it again", path, error)
        return None
    statistics = FeatureStatistics(len(total))
    if outer.shape != statistics.outer.shape or count < 2:
        return None
    statistics.count, statistics.total, statistics.outer = count, total.astype(np.float64), outer.astype(np.float64)
    return statistics


def save_reference(key: str, statistics: FeatureStatistics) -> Path | None:
    """Save atomically (a reader never sees half a file); a full disk only costs the cache."""
    from chromalab.atomic import atomic_target

    path = reference_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(path) as temporary, open(temporary, "wb") as stream:
            np.savez(stream, count=np.int64(statistics.count), total=statistics.total, outer=statistics.outer)
    except OSError as error:
        log.warning("%s: could not save the FID reference cache (%s)", path, error)
        return None
    return path
