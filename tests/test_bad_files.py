"""Bad input is one line naming the file and the reason, and the batch goes on (README.md,
"Guarantees"), for every command that reads a photo folder and for the web API.

The corpus (tests/badfiles.py) holds, besides ordinary photos: truncated JPEG, PNG, WebP,
TIFF and GIF files, PNG bytes named .jpg, text named .png, a PNG header claiming 100000 x
100000 pixels, an empty file, a 4x4 image, CMYK JPEG, 16-bit gray PNG, palette PNG and GIF,
gray+alpha PNG, a JPEG with EXIF orientation 6 (must come out turned), a folder named x.jpg
(with a photo in it and a link back up the tree), a link to itself, a dangling link, and a
file nobody may read (chmod 000; root reads it anyway, so as root it is a valid photo).

Bad-file cases per command (the rest are processed):

* colorize, explore, evaluate: 11 (12 when not run as root: the unreadable file), each named
  on stderr in one line; exit 1.
* prepare: the same 11 (12), all in manifest.csv with their reason; 10 (11) named on stderr,
  because the 4x4 image is dropped by the --min-size filter, which is no error; exit 1.
* web API (one upload per request, as the page sends them): 9, those that are bytes (links,
  folders and permissions cannot be uploaded), each a 400 with a one-line detail naming the
  upload.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from chromalab.cli import main
from tests.badfiles import Corpus, make_corpus, restore_permissions


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    made = make_corpus(tmp_path_factory.mktemp("bad") / "photos")
    yield made
    restore_permissions(made)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_each_named_once(err: str, bad: dict[str, str], root: Path) -> None:
    """One line per bad file, holding its path and its reason; nothing else on stderr."""
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    for name, reason in bad.items():
        matching = [line for line in lines if f"{root / name}:" in line]
        assert len(matching) == 1 and reason in matching[0], (name, reason, matching)
    assert len(lines) == len(bad), lines


def top_darker_than_bottom(image: Image.Image) -> bool:
    """The EXIF-rotated photo's stored left (dark) half must end up on top."""
    gray = np.asarray(image.convert("L"), dtype=np.float64)
    third = gray.shape[0] // 3
    return gray[:third].mean() + 60 < gray[-third:].mean()


# --- colorize --------------------------------------------------------------------------------


def colorize_output(name: str) -> str:
    """Where colorize writes a valid case: the same path, GIF as PNG (beside palette.png, so
    it keeps its old extension in the name)."""
    return "palette-gif.png" if name == "palette.gif" else name


def test_colorize(corpus: Corpus, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(["colorize", str(corpus.root), "--model", str(tiny_model), "--out", str(out)], capsys)
    assert code == 1
    assert_each_named_once(err, corpus.bad, corpus.root)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(colorize_output(name) for name in corpus.good)  # each once, nothing else
    for name, size in corpus.good.items():
        with Image.open(out / colorize_output(name)) as result:
            assert result.size == size and result.mode == "RGB", name
    assert top_darker_than_bottom(Image.open(out / "rotated.jpg"))
    assert f"colorized {len(corpus.good)} photo(s)" in stdout and f"{len(corpus.bad)} failed" in stdout


def test_colorize_names_a_bad_file_given_by_name(corpus: Corpus, tiny_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    files = [corpus.root / name for name in ("loop.jpg", "dangling.jpg", "plain.png")]
    code, _, err = run(["colorize", *map(str, files), "--model", str(tiny_model), "--out", str(tmp_path)], capsys)
    assert code == 1
    assert_each_named_once(err, {n: corpus.bad[n] for n in ("loop.jpg", "dangling.jpg")}, corpus.root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.png"]


# --- prepare ---------------------------------------------------------------------------------


def test_prepare(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prepared"
    code, _, err = run(["prepare", str(corpus.root), str(out), "--size", "16", "--min-size", "8", "--crop", "none",
                        "--format", "png", "--workers", "1", "--no-progress"], capsys)
    assert code == 1
    # The 4x4 image is dropped by --min-size like any small photo: a filter, not an error.
    errors = {name: reason for name, reason in corpus.bad.items() if name != "dot.png"}
    assert_each_named_once(err, errors, corpus.root)
    with (out / "manifest.csv").open(newline="") as handle:
        rows = {row["source"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(corpus.bad) | set(corpus.good)
    for name, reason in corpus.bad.items():
        assert rows[name]["status"] == ("too-small" if name == "dot.png" else "unreadable")
        assert reason in rows[name]["detail"], (name, rows[name])
    for name, (width, height) in corpus.good.items():
        row = rows[name]
        assert row["status"] == "kept" and (int(row["width"]), int(row["height"])) == (width, height), row
        with Image.open(out / row["output"]) as result:  # shorter side 16, the aspect kept
            assert min(result.size) == 16 and (result.width > result.height) == (width > height), name
    assert top_darker_than_bottom(Image.open(out / rows["rotated.jpg"]["output"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["kept"] == len(corpus.good) and len(summary["problems"]) == len(errors)


# --- explore ---------------------------------------------------------------------------------


def test_explore(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    code, stdout, err = run(["explore", str(corpus.root), "--out", str(out), "--workers", "1", "--no-progress"],
                            capsys)
    assert code == 1
    assert_each_named_once(err, corpus.bad, corpus.root)
    with (out / "photos.csv").open(newline="") as handle:
        rows = {str(Path(row["path"]).relative_to(corpus.root)): row for row in csv.DictReader(handle)}
    assert set(rows) == set(corpus.bad) | set(corpus.good)
    for name, (width, height) in corpus.good.items():
        assert (int(rows[name]["width"]), int(rows[name]["height"])) == (width, height), rows[name]
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["photos"], stats["unreadable"]) == (len(corpus.good), len(corpus.bad))
    assert f"{len(corpus.good)} photos ({len(corpus.bad)} unreadable" in stdout


# --- evaluate --------------------------------------------------------------------------------


def test_evaluate(corpus: Corpus, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    code, stdout, err = run(["evaluate", "--model", str(tiny_model), "--data", str(corpus.root), "--size", "0",
                             "--metrics", "psnr", "--out", str(out)], capsys)
    assert code == 1
    assert_each_named_once(err, corpus.bad, corpus.root)
    report = json.loads((out / "metrics.json").read_text())
    assert report["settings"]["images"] == len(corpus.good)
    assert {str(Path(p).relative_to(corpus.root)) for p in report["settings"]["skipped"]} == set(corpus.bad)
    with (out / "per_image.csv").open(newline="") as handle:
        sizes = {str(Path(row["path"]).relative_to(corpus.root)): (int(row["width"]), int(row["height"]))
                 for row in csv.DictReader(handle)}
    assert sizes == corpus.good  # full resolution, as displayed
    assert f"skipped {len(corpus.bad)} unreadable photo(s)" in stdout


def test_evaluate_with_only_bad_files_has_nothing_to_do(corpus: Corpus, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    for name in ("truncated.jpg", "notes.png", "empty.jpg"):
        (only_bad / name).write_bytes((corpus.root / name).read_bytes())
    code, _, err = run(["evaluate", "--model", "gray", "--data", str(only_bad), "--metrics", "psnr",
                        "--out", str(tmp_path / "report")], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 4 and "none of the 3 photo(s) could be read" in lines[-1]


# --- the web API -----------------------------------------------------------------------------


def test_web_api(corpus: Corpus, tiny_model: Path) -> None:
    from chromalab.web.app import create_app

    cases = corpus.uploadable()
    with TestClient(create_app([tiny_model], None, max_upload_mb=2), base_url="http://127.0.0.1:7860") as client:
        for case in cases:
            data = (corpus.root / case.name).read_bytes()
            response = client.post("/api/colorize", files={"images": (case.name, data, "application/octet-stream")})
            if case.reason is not None:
                detail = response.json()["detail"]
                assert response.status_code == 400 and "\n" not in detail, (case.name, response.text)
                assert detail.startswith(f"{case.name}: ") and case.reason in detail, (case.name, detail)
            else:
                assert response.status_code == 200, (case.name, response.text)
                assert response.headers["X-Chromalab-Size"] == "{}x{}".format(*case.size), case.name
                if case.name == "rotated.jpg":
                    assert top_darker_than_bottom(Image.open(__import__("io").BytesIO(response.content)))
        assert client.get("/api/info").json()["queued"] == 0  # nothing stuck after the bad ones
    assert sum(case.reason is not None for case in cases) == 9


# --- the training index, and what root cannot show ----------------------------------------------


def test_the_training_index_skips_each_bad_file_with_its_reason(corpus: Corpus) -> None:
    from chromalab.data.folder import index_folder

    index = index_folder(corpus.root, workers=1, use_cache=False, progress=False)
    relative = lambda paths: {str(p.relative_to(index.root)) for p in paths}  # noqa: E731
    assert relative(index.unreadable) == set(corpus.bad)
    for path, reason in index.unreadable.items():
        assert corpus.bad[str(path.relative_to(index.root))] in reason
    assert relative(index.files) | relative(index.grayscale) == set(corpus.good)  # each once
    assert {"gray16.png", "gray-alpha.png"} <= relative(index.grayscale)


def test_a_file_nobody_may_read(corpus: Corpus, tmp_path: Path) -> None:
    import os

    from chromalab.data.images import BadImageError, open_rgb

    locked = corpus.root / "locked.png"
    if os.geteuid() == 0:  # root reads anything: the file is an ordinary photo then
        assert open_rgb(locked).size == corpus.good["locked.png"]
        return
    with pytest.raises(BadImageError, match="locked.png: permission denied$"):
        open_rgb(locked)
