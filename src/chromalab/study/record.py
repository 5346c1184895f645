"""``OUT/study.json``: what a study's output folder holds that the study itself wrote.

The record lists the files the command wrote (so a later run may replace its own table and
plots, and nothing else), each entry's run folder and state (``running``, ``finished``,
``failed`` with the error, ``interrupted``), and the evaluation last written (so a re-run
with nothing new to score rewrites the table without evaluating again).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chromalab.atomic import write_text_atomic
from chromalab.errors import ChromalabError

RECORD = "study.json"
FORMAT = "chromalab-study/1"


@dataclass
class StudyRecord:
    out: Path
    written: set[str] = field(default_factory=set)  # paths relative to ``out``
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.out / RECORD

    @classmethod
    def open(cls, out: Path) -> "StudyRecord":
        """The folder's record, or an empty one for a new folder."""
        if out.exists() and not out.is_dir():
            raise ChromalabError(f"{out}: exists and is not a folder (--out)")
        path = out / RECORD
        if not path.exists():
            return cls(out)
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ChromalabError(f"{path}: not a readable study record ({error})") from None
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise ChromalabError(f"{path}: not written by chromalab study (use another --out)")
        return cls(out, set(values.get("written", [])), dict(values.get("entries", {})),
                   dict(values.get("evaluation", {})))

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "written": sorted(self.written), "entries": self.entries,
                   "evaluation": self.evaluation}
        write_text_atomic(self.path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    # --- ownership ---------------------------------------------------------------------------
    def check_outputs(self, names: list[str], overwrite: bool) -> None:
        """Fail before any work if an output would replace a file this study did not write."""
        if overwrite:
            return
        foreign = [name for name in names if (self.out / name).exists() and name not in self.written]
        if foreign:
            raise ChromalabError(f"{self.out}: already holds {', '.join(foreign)}, not written by this study "
                                 "(use --overwrite or another --out)")

    def check_run_folder(self, name: str, run_dir: Path) -> None:
        """An entry trains only into a run folder this study made (or a new one)."""
        if run_dir.exists() and name not in self.entries:
            raise ChromalabError(f"{run_dir}: exists and was not made by this study (use another --out)")

    def wrote(self, path: Path) -> Path:
        self.written.add(path.relative_to(self.out).as_posix())
        return path

    # --- entries -----------------------------------------------------------------------------
    def set_entry(self, name: str, **values: Any) -> None:
        self.entries.setdefault(name, {}).update(values)
        self.save()

    def entry_status(self, name: str) -> str | None:
        return self.entries.get(name, {}).get("status")


def clear_partial_run(run_dir: Path) -> None:
    """Remove a run folder of this study that holds no checkpoint to continue from.

    Only called for folders the record says this study made: a run killed before its first
    checkpoint has nothing to resume, and ``train`` would otherwise pick ``<name>-2``.
    """
    if run_dir.is_dir():
        shutil.rmtree(run_dir)
