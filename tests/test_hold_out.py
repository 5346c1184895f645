"""scripts/hold_out.py and scripts/build-corpus-v2.sh's checks: the held-out choice is made
once, by sorted path, before anything trains on the photos."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_script, synthetic_photo

BUILD_V2 = Path(__file__).parent.parent / "scripts" / "build-corpus-v2.sh"


@pytest.fixture(scope="module")
def hold_out():
    return load_script("hold_out")


def test_every_kth_photo_in_sorted_order_moves_to_the_held_out_folder(hold_out, tmp_path: Path, capsys) -> None:
    unpacked, held = tmp_path / "unpacked", tmp_path / "held"
    for index in range(10):  # two classes; sorted order runs through both
        folder = unpacked / ("ants" if index < 5 else "bees")
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_photo(index, 24, 24).save(folder / f"{index:02d}.png")
    (unpacked / "README.txt").write_text("not a photo")
    assert hold_out.main([str(unpacked), str(held), "--every", "3"]) == 0
    moved = sorted(p.relative_to(held).as_posix() for p in held.rglob("*.png"))
    assert moved == ["ants/00.png", "ants/03.png", "bees/06.png", "bees/09.png"]
    assert len(list(unpacked.rglob("*.png"))) == 6 and (unpacked / "README.txt").exists()
    assert "held out 4 of 10 photos" in capsys.readouterr().out
    # The choice is made once: a second call refuses, and nothing moves.
    assert hold_out.main([str(unpacked), str(held), "--every", "3"]) == 2
    assert "already holds photos" in capsys.readouterr().err
    assert len(list(unpacked.rglob("*.png"))) == 6 and len(list(held.rglob("*.png"))) == 4


@pytest.mark.parametrize("args, message", [(["--every", "0"], "--every must be 1 or more"),
                                           (["--every", "2"], "no such folder")])
def test_bad_arguments_are_one_line(hold_out, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert hold_out.main([str(tmp_path / "missing"), str(tmp_path / "held"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "held").exists()


def test_corpus_v2_needs_every_snapshot_before_it_writes_anything(tmp_path: Path) -> None:
    snapshots, out = tmp_path / "snapshots", tmp_path / "corpus"
    snapshots.mkdir()
    chromalab = Path(sys.executable).parent / "chromalab"
    done = subprocess.run(["bash", str(BUILD_V2), str(snapshots), str(out)], capture_output=True, text=True,
                          env={**os.environ, "CHROMALAB": str(chromalab)}, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"{snapshots}: no snapshot of sulekahraman/miniplaces "
                                   "(expected sulekahraman+miniplaces/repo or miniplaces.git)")
    assert not out.exists()
