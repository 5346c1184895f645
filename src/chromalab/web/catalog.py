"""Which models the web page offers: shipped ones that are present, run folders, and --model.

The catalog is rebuilt on every request (a couple of directory listings), so a training run
that finishes while the server is up shows up on the next page load. The page only ever
sends a model's *id*; the server maps it back to a file here, so no client-supplied path is
ever opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from chromalab.checkpoint import SHIPPED_MODELS, resolve_model_path
from chromalab.errors import ChromalabError

RUN_MODEL_FILE = "model.safetensors"
# Run folders sit directly in --models-dir (runs/NAME) or one level deeper (a sweep's trials).
RUN_PATTERNS = (f"*/{RUN_MODEL_FILE}", f"*/*/{RUN_MODEL_FILE}")


@dataclass(frozen=True)
class ModelChoice:
    id: str  # what the page shows and sends back
    kind: str  # "given" (--model), "shipped" or "run"
    path: Path  # the model file Colorizer.load reads

    @property
    def label(self) -> str:
        """A short name for the menu: the last two parts of a long path (the id is the tooltip)."""
        parts = Path(self.id).parts
        return self.id if len(parts) <= 2 else str(Path(*parts[-2:]))


def shipped_models() -> list[ModelChoice]:
    """Shipped models actually present in this installation (resolve_model_path says which)."""
    choices = []
    for name in SHIPPED_MODELS:
        try:
            choices.append(ModelChoice(name, "shipped", resolve_model_path(name)))
        except ChromalabError:
            continue
    return choices


def run_models(models_dir: Path | None) -> list[ModelChoice]:
    """Run folders under ``models_dir`` holding a finished model, newest first."""
    if models_dir is None or not models_dir.is_dir():
        return []
    files = {path for pattern in RUN_PATTERNS for path in models_dir.glob(pattern) if path.is_file()}
    newest_first = sorted(files, key=lambda path: (-path.stat().st_mtime, str(path)))
    return [ModelChoice(_display_path(path.parent), "run", path) for path in newest_first]


def given_models(models: Sequence[str | Path]) -> list[ModelChoice]:
    """``--model`` arguments; a missing one raises ChromalabError (a typo should stop start-up)."""
    choices = []
    for item in models:
        text = str(item)
        kind = "shipped" if text in SHIPPED_MODELS else "given"
        label = text if kind == "shipped" else _display_path(Path(text))
        choices.append(ModelChoice(label, kind, resolve_model_path(text)))
    return choices


def build_catalog(models: Sequence[str | Path], models_dir: Path | None) -> list[ModelChoice]:
    """All choices, --model first (the page's default), each model file listed once."""
    catalog: list[ModelChoice] = []
    seen_files: set[Path] = set()
    seen_ids: set[str] = set()
    for choice in [*given_models(models), *shipped_models(), *run_models(models_dir)]:
        resolved = choice.path.resolve()
        if resolved in seen_files:
            continue
        seen_files.add(resolved)
        model_id = choice.id
        suffix = 2
        while model_id in seen_ids:  # two different files that display alike
            model_id = f"{choice.id} ({suffix})"
            suffix += 1
        seen_ids.add(model_id)
        catalog.append(ModelChoice(model_id, choice.kind, choice.path))
    return catalog


def _display_path(path: Path) -> str:
    """A short, readable name: relative to the working folder when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative
