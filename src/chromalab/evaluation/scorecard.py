"""A model's scorecard: every kind of photo people colorize, one table, one sheet.

One FID on one evaluation set hides where a model fails: a model can beat gray on scenes and
lose on faces. The scorecard scores models on several sets side by side: the held-out slices
of the training corpus (one folder per kind of photo: people, vehicles, birds, objects,
animals, scenes) and the evaluation photos ``val/``, clean and damaged as old photos
(chromalab.data.damage). Gray (no color) is scored on every set: "does it beat leaving the
photo gray" is the question the table answers first (the ``FID / gray`` column).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image, ImageDraw

from chromalab.errors import ChromalabError
from chromalab.evaluation.baselines import GrayBaseline
from chromalab.evaluation.compare import load_models
from chromalab.evaluation.evaluate import EvaluationResult, Samples, evaluate_models
from chromalab.evaluation.report import _font, check_outputs_free, format_value, sample_sheet, write_text_atomic

SCORECARD_METRICS = ("fid", "colorfulness", "colorfulness_truth", "ciede2000", "psnr", "delta_l")
SCORECARD_FILES = ("scorecard.md", "scorecard.csv", "scorecard.json", "sheet.jpg")
COLUMNS = (  # (metric key, column title) of the table, in order
    ("fid", "FID ↓"), ("fid_ratio", "FID / gray ↓"), ("colorfulness", "colorfulness"),
    ("colorfulness_truth", "truth's"), ("ciede2000", "CIEDE2000 ↓"), ("psnr", "PSNR ↑"), ("delta_l", "|ΔL*|"),
)
GRAY = "gray"


@dataclass(frozen=True)
class ScoreSet:
    """One row group of the scorecard: a folder of photos, optionally damaged as old photos."""

    name: str
    path: Path
    damage: bool = False


@dataclass
class Scorecard:
    sets: list[ScoreSet]
    results: dict[str, list[EvaluationResult]] = field(default_factory=dict)  # set -> gray first, then models
    size: int = 256

    def models(self) -> list[str]:
        first = next(iter(self.results.values()), [])
        return [r.name for r in first]

    def rows(self) -> list[dict[str, Any]]:
        """One row per (set, model): the summary metrics and FID as a fraction of gray's."""
        rows = []
        for score_set in self.sets:
            results = self.results[score_set.name]
            gray_fid = next((r.summary.get("fid") for r in results if r.name == GRAY), None)
            for result in results:
                fid = result.summary.get("fid")
                rows.append({
                    "set": score_set.name, "model": result.name, "photos": result.settings.get("images"),
                    **{key: result.summary.get(key) for key in SCORECARD_METRICS},
                    "fid_ratio": fid / gray_fid if fid is not None and gray_fid else None,
                })
        return rows


def scorecard_sets(slices: str | Path | None = None, val: str | Path | None = None,
                   damaged_val: bool = True) -> list[ScoreSet]:
    """The slices (each sub-folder of ``slices``, sorted), then ``val`` and its damaged copy."""
    sets: list[ScoreSet] = []
    if slices is not None:
        root = Path(slices)
        if not root.is_dir():
            raise ChromalabError(f"{root}: no such folder (--slices takes a folder of one sub-folder per kind of photo)")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise ChromalabError(f"{root}: no sub-folders (--slices takes a folder of one sub-folder per kind of photo)")
        sets += [ScoreSet(folder.name, folder) for folder in folders]
    if val is not None:
        path = Path(val)
        if not path.exists():
            raise ChromalabError(f"{path}: no such folder")
        name = path.name if slices is None or path.name not in {s.name for s in sets} else f"{path.name}-val"
        sets.append(ScoreSet(name, path))
        if damaged_val:
            sets.append(ScoreSet(f"{name} (damaged)", path, damage=True))
    if not sets:
        raise ChromalabError("nothing to score: give --slices, --val or both")
    return sets


def score(models: Sequence[str], sets: Sequence[ScoreSet], size: int = 256, limit: int | None = None,
          batch_size: int = 16, progress: bool = True, device: str | None = None,
          on_error: Callable[[str], None] | None = None, reference_cache: bool | None = None) -> Scorecard:
    """Score gray and every model on every set (one pass over each set for all of them)."""
    if not models:
        raise ChromalabError("scorecard needs at least one model")
    colorizers, _ = load_models(models)
    if GRAY in colorizers:
        raise ChromalabError(f"a model is labelled '{GRAY}', which names the no-color row; rename its file")
    everyone = {GRAY: GrayBaseline(), **colorizers}
    card = Scorecard(list(sets), size=size)
    for score_set in sets:
        card.results[score_set.name] = evaluate_models(
            everyone, score_set.path, size=size, limit=limit, batch_size=batch_size,
            metrics=SCORECARD_METRICS, progress=progress, device=device, on_error=on_error,
            reference_cache=reference_cache, damage=score_set.damage)
    return card


# --- writing ---------------------------------------------------------------------------------


def markdown_scorecard(card: Scorecard) -> str:
    models = [m for m in card.models() if m != GRAY]
    lines = [
        "# Scorecard", "",
        f"Models: {', '.join(f'`{m}`' for m in models)}; every set at {card.size} px (shorter side, "
        "center crop); gray input = the photo's L*; `(damaged)`: the gray input damaged as an old "
        "photo (fade, blur, grain, JPEG; seeded by file name); FID / gray below 1 beats leaving "
        "the photo gray. Best model per set in bold (gray excluded).", "",
        "| set | photos | model | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---:|---|" + "---:|" * len(COLUMNS),
    ]
    rows = card.rows()
    for score_set in card.sets:
        of_set = [r for r in rows if r["set"] == score_set.name]
        best = _best_of(of_set)
        for row in of_set:
            cells = []
            for key, _ in COLUMNS:
                text = _format(key, row.get(key))
                cells.append(f"**{text}**" if row["model"] in best.get(key, ()) else text)
            lines.append(f"| {score_set.name} | {row['photos']} | {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def print_scorecard(card: Scorecard) -> None:
    """The table on the terminal (rich), a section per set."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Scorecard (FID / gray below 1 beats leaving the photo gray)")
    for title in ("set", "photos", "model", *(title for _, title in COLUMNS)):
        table.add_column(title, justify="left" if title in ("set", "model") else "right")
    previous = None
    for row in card.rows():
        if previous is not None and row["set"] != previous:
            table.add_section()
        previous = row["set"]
        table.add_row(row["set"], str(row["photos"]), row["model"], *(_format(key, row.get(key)) for key, _ in COLUMNS))
    Console().print(table)


def _format(key: str, value: float | None) -> str:
    if key == "fid_ratio":
        return "–" if value is None else f"{value:.3f}"
    return format_value(key, value)


def _best_of(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Metric -> the models (not gray) with the best value on these rows."""
    lower = {"fid", "fid_ratio", "ciede2000", "delta_l"}
    higher = {"psnr", "colorfulness"}
    best: dict[str, set[str]] = {}
    models = [r for r in rows if r["model"] != GRAY]
    for key in lower | higher:
        values = [(r[key], r["model"]) for r in models if r.get(key) is not None]
        if len(values) < 2:
            continue
        target = min(v for v, _ in values) if key in lower else max(v for v, _ in values)
        best[key] = {m for v, m in values if v == target}
    return best


def csv_scorecard(card: Scorecard) -> str:
    buffer = io.StringIO()
    keys = ["set", "photos", "model", *(key for key, _ in COLUMNS)]
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in card.rows():
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in keys})
    return buffer.getvalue()


def json_scorecard(card: Scorecard) -> str:
    return json.dumps({
        "size": card.size,
        "sets": [{"name": s.name, "path": str(s.path), "damage": s.damage} for s in card.sets],
        "rows": card.rows(),
    }, indent=2, allow_nan=False, default=str) + "\n"


SHEET_SIDE = 192  # longest side of a photo on the sheet: 8 sets of 2 rows stay a readable page


def scorecard_sheet(card: Scorecard, per_set: int = 2, gap: int = 4, side: int = SHEET_SIDE) -> Image.Image:
    """``per_set`` photos of every set: gray input | each model | truth, under the set's name."""
    blocks = []
    for score_set in card.sets:
        results = card.results[score_set.name]
        count = len(results[0].samples.gray)
        if count == 0:
            continue
        chosen = sorted({round(i * (count - 1) / max(1, per_set - 1)) for i in range(min(per_set, count))})
        trimmed = [dataclasses.replace(r, samples=_subset(r.samples, chosen, side)) for r in results if r.name != GRAY]
        block = sample_sheet(trimmed, gap=gap)
        title = Image.new("RGB", (block.width, 22), (235, 235, 235))
        ImageDraw.Draw(title).text((gap + 2, 11), f"{score_set.name}", fill=(0, 0, 0), font=_font(14), anchor="lm")
        blocks += [title, block]
    if not blocks:
        raise ChromalabError("no sample photos to draw")
    width = max(b.width for b in blocks)
    sheet = Image.new("RGB", (width, sum(b.height for b in blocks)), (255, 255, 255))
    y = 0
    for block in blocks:
        sheet.paste(block, (0, y))
        y += block.height
    return sheet


def _subset(samples: Samples, indices: list[int], side: int) -> Samples:
    def pick(items: list) -> list:
        return [items[i] for i in indices if i < len(items)]

    def small(images: list[Image.Image]) -> list[Image.Image]:
        resized = []
        for image in pick(images):
            image = image.copy()
            image.thumbnail((side, side), Image.Resampling.LANCZOS)
            resized.append(image)
        return resized

    return Samples(paths=pick(samples.paths), gray=small(samples.gray), truth=small(samples.truth),
                   output=small(samples.output), points=pick(samples.points))


def write_scorecard(card: Scorecard, out_dir: str | Path, overwrite: bool = False,
                    per_set: int = 2) -> dict[str, Path]:
    """scorecard.md/.csv/.json and sheet.jpg in ``out_dir`` (never over files without ``overwrite``)."""
    from chromalab.data.images import save_image_atomic

    out = Path(out_dir)
    check_outputs_free(out, SCORECARD_FILES, overwrite)
    written = {
        "markdown": write_text_atomic(out / "scorecard.md", markdown_scorecard(card), overwrite),
        "csv": write_text_atomic(out / "scorecard.csv", csv_scorecard(card), overwrite),
        "json": write_text_atomic(out / "scorecard.json", json_scorecard(card), overwrite),
    }
    save_image_atomic(scorecard_sheet(card, per_set), out / "sheet.jpg", overwrite=overwrite, quality=85)
    written["sheet"] = out / "sheet.jpg"
    return written
