"""Writing evaluation results: JSON, a Markdown table, per-image CSV, and a sample sheet PNG.

Files are written atomically (temporary file, then rename) and an existing file is only
replaced with ``overwrite=True``; so a report never clobbers something a user kept.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from chromalab import atomic
from chromalab.atomic import check_outputs_free
from chromalab.data.images import check_writable_folder, save_image_atomic
from chromalab.errors import ChromalabError
from chromalab.evaluation.metrics import DESCRIPTIONS, METRICS, best_index

if TYPE_CHECKING:
    from chromalab.evaluation.evaluate import EvaluationResult

DECIMALS = {"fid": 2, "colorfulness": 2, "colorfulness_truth": 2, "delta_colorfulness": 2,
            "psnr": 2, "ssim": 4, "ssim_ab": 4, "ciede2000": 2, "lpips": 4, "delta_l": 3,
            "images_per_s": 1}
ARROWS = {"lower": "↓", "higher": "↑", "zero": "→0", "none": ""}
REPORT_FILES = ("metrics.json", "metrics.md", "per_image.csv", "samples.png")


# --- formatting -----------------------------------------------------------------------------


def metric_columns(results: Sequence["EvaluationResult"]) -> list[str]:
    present = {metric for result in results for metric in result.summary}
    return [metric for metric in METRICS if metric in present]


def format_value(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{DECIMALS.get(metric, 3)}f}"


def best_rows(results: Sequence["EvaluationResult"], columns: Sequence[str]) -> dict[str, int | None]:
    """Per column, the row holding the best value (direction-aware); only with 2+ rows."""
    if len(results) < 2:
        return dict.fromkeys(columns)
    return {c: best_index(c, [r.summary.get(c, math.nan) for r in results]) for c in columns}


def markdown_table(results: Sequence["EvaluationResult"]) -> str:
    """One row per model; the best value of each column in **bold**."""
    columns = metric_columns(results)
    best = best_rows(results, columns)
    header = ["model"] + [f"{c} {ARROWS[METRICS[c]]}".strip() for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * len(columns)]
    for row, result in enumerate(results):
        cells = [result.name]
        for column in columns:
            text = format_value(column, result.summary.get(column))
            cells.append(f"**{text}**" if best[column] == row else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(results: Sequence["EvaluationResult"], title: str = "Evaluation") -> str:
    settings = results[0].settings
    columns = metric_columns(results)
    parts = [
        f"# {title}\n",
        f"{settings.get('images', '?')} photos from `{settings.get('data', '?')}`; "
        f"{settings.get('protocol', '')}.\n",
        markdown_table(results),
        "↓ lower is better, ↑ higher is better, →0 closest to zero is best; best value in **bold**.\n",
        "\n".join(f"- **{c}**: {DESCRIPTIONS[c]}" for c in columns) + "\n",
    ]
    notes = list(dict.fromkeys(note for result in results for note in result.notes))
    if settings.get("skipped"):
        notes.append(f"{len(settings['skipped'])} unreadable photo(s) skipped (listed in metrics.json)")
    if notes:
        parts.append("Notes:\n\n" + "\n".join(f"- {note}" for note in notes) + "\n")
    return "\n".join(parts)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def report_json(results: Sequence["EvaluationResult"]) -> str:
    columns = metric_columns(results)
    best = best_rows(results, columns)
    payload = {
        "settings": results[0].settings,
        "metrics": {c: {"better": METRICS[c], "description": DESCRIPTIONS[c]} for c in columns},
        "models": [{"name": r.name, "summary": r.summary, "notes": r.notes} for r in results],
        "best": {c: results[i].name for c, i in best.items() if i is not None},
    }
    return json.dumps(_finite(payload), indent=2, ensure_ascii=False) + "\n"


def summary_csv(results: Sequence["EvaluationResult"]) -> str:
    columns = metric_columns(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", *columns])
    for result in results:
        writer.writerow([result.name, *(_csv_number(result.summary.get(c)) for c in columns)])
    return buffer.getvalue()


def per_image_csv(results: Sequence["EvaluationResult"]) -> str:
    columns = [c for c in ("width", "height", *METRICS) if any(c in row for r in results for row in r.per_image)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "path", *columns])
    for result in results:
        for row in result.per_image:
            writer.writerow([result.name, row["path"], *(_csv_number(row.get(c)) for c in columns)])
    return buffer.getvalue()


def _csv_number(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


# --- the sample sheet ------------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _label_lines(draw: ImageDraw.ImageDraw, label: str, width: int,
                 font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> list[str]:
    """``label`` in one line if it fits ``width``, else in two, broken after a '-', '_' or ' '.

    Study entries are often named ``<part>-<part>`` (``multiscale-ycbcr``): cut to one line,
    twenty of them would read ``multisca…`` four times. A part still too wide ends in '…'.
    """
    def fits(text: str) -> bool:
        return draw.textlength(text, font=font) <= width

    def shorten(text: str) -> str:
        while len(text) > 1 and not fits(text + "…"):
            text = text[:-1]
        return text + "…"

    if fits(label):
        return [label]
    breaks = [i + 1 for i, char in enumerate(label[:-1]) if char in "-_ "]
    fitting = [i for i in breaks if fits(label[:i].rstrip())]
    cut = fitting[-1] if fitting else (breaks[0] if breaks else 0)
    if not cut:
        return [shorten(label)]
    first, second = label[:cut].rstrip(), label[cut:]
    return [line if fits(line) else shorten(line) for line in (first, second)]


def sheet_header(labels: Sequence[str], cell_w: int, gap: int = 4) -> Image.Image:
    """The white strip of column labels above a sample sheet's columns of width ``cell_w``."""
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # The largest type at which every label fits whole (in one or two lines); 11 px at least.
    for size in (14, 13, 12, 11):
        font = _font(size)
        lines = [_label_lines(probe, label, cell_w, font) for label in labels]
        if not any(line.endswith("…") for entry in lines for line in entry):
            break
    line_h = 16
    height = 8 + line_h * max(len(entry) for entry in lines)
    header = Image.new("RGB", (len(labels) * (cell_w + gap) + gap, height), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for column, entry in enumerate(lines):
        x = gap + column * (cell_w + gap) + cell_w / 2
        top = (height - line_h * len(entry)) / 2
        for number, line in enumerate(entry):
            draw.text((x, top + line_h * (number + 0.5)), line, fill=(0, 0, 0), font=font, anchor="mm")
    return header


def sample_sheet(results: Sequence["EvaluationResult"], gap: int = 4) -> Image.Image:
    """Rows of sample photos: gray input | each model's output | ground truth."""
    reference = results[0].samples
    labels = ["gray input", *(r.name for r in results), "truth"]
    rows = [
        [reference.gray[i], *(r.samples.output[i] for r in results), reference.truth[i]]
        for i in range(len(reference.gray))
    ]
    if not rows:
        raise ChromalabError("no sample photos to draw")
    cell_w = max(image.width for row in rows for image in row)
    heights = [max(image.height for image in row) for row in rows]
    header = sheet_header(labels, cell_w, gap)
    sheet = Image.new("RGB", (header.width, header.height + sum(heights) + gap * len(rows) + gap), (255, 255, 255))
    sheet.paste(header, (0, 0))
    y = header.height
    for row, height in zip(rows, heights):
        for column, image in enumerate(row):
            x = gap + column * (cell_w + gap)
            sheet.paste(image, (x + (cell_w - image.width) // 2, y + (height - image.height) // 2))
        y += height + gap
    return sheet


# --- writing ---------------------------------------------------------------------------------


def write_text_atomic(path: Path, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` atomically; never over an existing file unless ``overwrite``."""
    check_writable_folder(path.parent)
    try:
        return atomic.write_text_atomic(path, text, replace=overwrite)
    except atomic.OutputExistsError:
        raise ChromalabError(f"{path}: exists (use --overwrite or another --out)") from None


def write_report(results: Sequence["EvaluationResult"], out_dir: str | Path, overwrite: bool = False,
                 title: str = "Evaluation") -> dict[str, Path]:
    """metrics.json, metrics.md, per_image.csv and samples.png for one or more models."""
    if not results:
        raise ChromalabError("no results to write")
    out = Path(out_dir)
    check_outputs_free(out, REPORT_FILES, overwrite)
    check_writable_folder(out)
    written = {
        "json": write_text_atomic(out / "metrics.json", report_json(results), overwrite),
        "markdown": write_text_atomic(out / "metrics.md", markdown_report(results, title), overwrite),
        "per_image": write_text_atomic(out / "per_image.csv", per_image_csv(results), overwrite),
    }
    if results[0].samples.gray:
        save_image_atomic(sample_sheet(results), out / "samples.png", overwrite=overwrite)
        written["samples"] = out / "samples.png"
    return written
