"""Which files in a sweep's ``--out`` the sweep may replace: only those it wrote itself.

A sweep runs for hours and is run again to continue, rewriting its report each time, so
"refuse any existing file" would refuse its own. Instead ``sweep.json`` records what it wrote:
each report file's SHA-256 as written, and that ``study.db`` is its own study. A file at one
of its paths that the record does not account for (a user's own ``trials.md``, a ``best.yaml``
edited since, a ``study.db`` that is not an Optuna database) is foreign: the sweep stops
before any training unless ``--overwrite``, which replaces it.

An Optuna database at ``study.db`` is always continued: that is what running a sweep again
is for, and a study made in Python (or by a chromalab from before the record) is one too. A
folder like that without ``sweep.json`` is a sweep folder from before the record existed;
its report files count as the sweep's own.

Trial run folders need no record: ``train`` never writes into a folder it did not make.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from chromalab.atomic import OutputExistsError, atomic_target, write_text_atomic
from chromalab.errors import ChromalabError

RECORD = "sweep.json"
STUDY_DB = "study.db"
TRIALS = "trials"
REPORT_FILES = ("trials.csv", "trials.md", "metric_vs_params.png", "importance.png",
                "parallel_coordinates.png", "best.yaml")
MARK = "chromalab sweep"  # the record's "written_by": a user's own sweep.json never has it
SQLITE_HEADER = b"SQLite format 3\x00"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_optuna_database(path: Path) -> bool:
    """An SQLite file holding Optuna's tables (read only; the file is not changed)."""
    import sqlite3

    try:
        with open(path, "rb") as handle:
            if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                return False
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except (OSError, sqlite3.Error):
        return False
    return {"studies", "trials", "version_info"} <= tables


class SweepFiles:
    """The sweep folder ``out`` and the record of the files the sweep wrote into it.

    ``own_db``: the study lives in ``out/study.db`` (no ``--storage``). ``overwrite``: files
    the record does not account for may be replaced.
    """

    def __init__(self, out: Path, overwrite: bool = False, own_db: bool = True) -> None:
        self.out = Path(out)
        self.overwrite = overwrite
        self.own_db = own_db

    # --- the record ------------------------------------------------------------------------
    def _read_record(self) -> dict[str, str] | None:
        """name -> SHA-256 ("" for study.db); None when ``sweep.json`` is absent or not ours."""
        try:
            payload = json.loads((self.out / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("written_by") != MARK:
            return None
        files = payload.get("files")
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}

    def _remember(self, name: str, digest: str) -> None:
        # Read again just before writing: another process on the same folder may have recorded
        # its own writes since this one started.
        record = self._read_record() or {}
        record[name] = digest
        text = json.dumps({"written_by": MARK, "files": dict(sorted(record.items()))}, indent=1) + "\n"
        write_text_atomic(self.out / RECORD, text)

    def _legacy(self) -> bool:
        """A sweep folder from before ``sweep.json``: its own Optuna study.db, no record."""
        return (self.own_db and not os.path.lexists(self.out / RECORD)
                and is_optuna_database(self.out / STUDY_DB))

    def _ours(self, name: str, record: dict[str, str] | None) -> bool:
        path = self.out / name
        if name == STUDY_DB:  # changes with every trial: its kind is what counts, not its bytes
            return (record is not None and name in record and path.is_file()) or is_optuna_database(path)
        if record is None:
            return self._legacy() and path.is_file()
        if name not in record:
            return False
        try:
            return path.is_file() and _sha256(path) == record[name]
        except OSError:
            return False

    # --- before the sweep --------------------------------------------------------------------
    def foreign(self) -> list[str]:
        """The sweep's paths in ``out`` that hold something it did not write."""
        record = self._read_record()
        names = [*(([STUDY_DB]) if self.own_db else []), *REPORT_FILES]
        taken = [name for name in names if os.path.lexists(self.out / name) and not self._ours(name, record)]
        if os.path.lexists(self.out / RECORD) and record is None:
            taken.append(RECORD)
        return taken

    def check(self) -> None:
        """Fail in one line, before any study or trial exists, if the sweep would replace a
        file it did not write (without ``overwrite``) or a folder stands where a file goes."""
        out = self.out
        if os.path.lexists(out) and not out.is_dir():
            raise ChromalabError(f"{out}: exists and is not a folder (--out)")
        if os.path.lexists(out / TRIALS) and not (out / TRIALS).is_dir():
            raise ChromalabError(f"{out / TRIALS}: exists and is not a folder; the sweep keeps its trial "
                                 "runs there (use another --out)")
        folders = [name for name in (*REPORT_FILES, RECORD, STUDY_DB) if (out / name).is_dir()]
        if folders:
            raise ChromalabError(f"{out}: {', '.join(folders)} should be a file, not a folder (use another --out)")
        taken = self.foreign()
        if taken and not self.overwrite:
            raise ChromalabError(f"{out}: holds {', '.join(taken)}, not written by this sweep "
                                 "(use --overwrite to replace them, or another --out)")

    def claim_study_db(self) -> None:
        """Make ``study.db`` the sweep's own before the storage opens it (after ``check``)."""
        if not self.own_db:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / STUDY_DB
        record = self._read_record()
        if os.path.lexists(path) and not self._ours(STUDY_DB, record):
            if not self.overwrite:  # check() ran first; a file that appeared since is kept
                raise OutputExistsError(path, "use --overwrite or another --out")
            path.unlink()  # --overwrite, and no Optuna study in it to continue
        legacy = record is None and self._legacy()
        self._remember(STUDY_DB, "")
        if legacy:  # adopt the report files of a sweep folder from before the record
            for name in REPORT_FILES:
                if (self.out / name).is_file():
                    self._remember(name, _sha256(self.out / name))

    # --- writing -------------------------------------------------------------------------------
    def write(self, name: str, writer: Callable[[Path], None]) -> Path:
        """Write the report file ``name`` through ``writer(temporary_path)``, atomically.

        Replaces an existing file only if the record says the sweep wrote it (or with
        ``overwrite``); a foreign file raises OutputExistsError and stays as it is.
        """
        path = self.out / name
        replace = self.overwrite or self._ours(name, self._read_record())
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_target(path, replace=replace) as temporary:
            writer(temporary)
        self._remember(name, _sha256(path))
        return path

    def write_text(self, name: str, text: str) -> Path:
        return self.write(name, lambda temporary: temporary.write_text(text, encoding="utf-8", newline=""))
