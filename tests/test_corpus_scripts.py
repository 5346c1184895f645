"""scripts/build-catalogue-corpus.sh on a tiny catalogue: the held-out twentieth, the prepared
folders, the linked training folder, and a second run that keeps everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import synthetic_photo

SCRIPT = Path(__file__).parent.parent / "scripts" / "build-catalogue-corpus.sh"


def run_script(*args: Path) -> subprocess.CompletedProcess[str]:
    chromalab = Path(sys.executable).parent / "chromalab"
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "CHROMALAB": str(chromalab)}, timeout=300)


def test_catalogue_split_prepared_and_linked(tmp_path: Path) -> None:
    catalogue, out = tmp_path / "catalogue", tmp_path / "corpus"
    for index in range(40):  # two classes of 20 photos, as Caltech-101's class folders
        folder = catalogue / ("cups" if index < 20 else "planes")
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_photo(index, 64, 64).save(folder / f"image_{index:04d}.jpg", quality=95)
    (out / "train").mkdir(parents=True)
    (out / "train-objects").mkdir()

    done = run_script(catalogue, out)
    assert done.returncode == 0, done.stderr
    held_out = sorted(p.relative_to(out / "raw" / "catalogue" / "heldout").as_posix()
                      for p in (out / "raw" / "catalogue" / "heldout").rglob("*.jpg"))
    assert held_out == ["cups/image_0000.jpg", "planes/image_0020.jpg"]  # the 1st and 21st in order
    assert len(list((out / "raw" / "catalogue" / "train").rglob("*.jpg"))) == 38
    assert (out / "raw" / "catalogue" / "train" / "cups" / "image_0001.jpg").resolve() == \
        (catalogue / "cups" / "image_0001.jpg").resolve()  # links: the photos are not copied
    trained = {p.name for p in (out / "train-catalogue").rglob("*") if p.suffix in {".png", ".jpg"}}
    held = {p.name for p in (out / "heldout-catalogue").rglob("*") if p.suffix in {".png", ".jpg"}}
    assert len(held) == 2 and 30 <= len(trained) <= 38 and not trained & held  # gray ones dropped
    assert sorted(p.name for p in (out / "all3").iterdir()) == [
        "catalogue-1", "catalogue-2", "catalogue-3", "objects", "scenes"]
    assert (out / "all3" / "catalogue-2").resolve() == (out / "train-catalogue").resolve()

    def photos() -> dict[Path, int]:  # (prepare rewrites only its own manifest and summary)
        return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in {".png", ".jpg"}}

    before = photos()
    again = run_script(catalogue, out)
    assert again.returncode == 0, again.stderr
    assert photos() == before and len(before) >= len(trained) + len(held)


def test_needs_the_scene_and_object_corpora_first(tmp_path: Path) -> None:
    (tmp_path / "catalogue").mkdir()
    done = run_script(tmp_path / "catalogue", tmp_path / "corpus")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("run scripts/build-scene-corpus.sh and scripts/build-object-corpus.sh first")
    assert not (tmp_path / "corpus").exists()
