"""Archive scale: ``chromalab colorize SRC --out DST --ray [ADDRESS]`` on a Ray cluster.

The driver lists the photos once, checks every output up front exactly as the single-machine
command does, and cuts the jobs into the same fixed chunks of ``--batch-size``
(:func:`chromalab.inference.colorize.chunked`). Ray Data hands the chunks to a pool of actors
that load the model once each and run the single-machine per-photo code
(:func:`~chromalab.inference.colorize.colorize_chunks`) on them, writing straight into DST: a
file system every node sees at the same path (NFS or the like). Same chunks, same batches, same
code, so every output is byte-identical to the single-machine command's.

Nothing lost, nothing done twice: every output is written atomically (a temporary name, then
one rename), and the journal, DST/.chromalab-journal/, says what is complete. Its job.json
holds the options that decide the outputs; each chunk's worker appends to that chunk's own
``chunk-N.jsonl`` (one writer per file, so no locking over NFS) a ``start`` line just before it
writes an output and a ``done`` line (bytes, node, pid) once it is there. A run started again
with the same command skips what the journal marks done, treats an output whose ``start`` line
has no ``done`` (the worker died between the rename and its next line) as done, removes the
temporary files a killed worker left, and does the rest. Ray replaces a dead actor and retries
its chunk; the retry reads the chunk's journal first, so it does not write again what the dead
one finished.

Ray is imported only here, and only when ``--ray`` is used: chromalab runs without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from chromalab.errors import ChromalabError

log = logging.getLogger(__name__)

JOURNAL = ".chromalab-journal"  # in DST; its name is hidden, so no image listing picks it up
JOB_FILE = "job.json"
FAILED_FILE = "failed.tsv"
RECOVERED_FILE = "recovered.jsonl"
# The temporary names of chromalab.atomic.atomic_target (mkstemp: 8 of [a-z0-9_]): only these are
# ever removed, and only in folders that receive this job's outputs.
TEMPORARY = re.compile(r"\.chromalab-[a-z0-9_]{8}\.[A-Za-z0-9]{2,5}")
INSTALL_HINT = "--ray needs Ray: pip install 'chromalab[ray]'"
MAX_BLOCKS = 2000
ACTORS_TIMEOUT_S = 600
LOCAL = "local"  # --ray without an address: start a Ray of our own on this machine


def require_ray() -> None:
    """One line and exit 2 (a ChromalabError) when Ray is not installed."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise ChromalabError(INSTALL_HINT) from None


@dataclass(frozen=True)
class ArchiveSettings:
    """What every actor needs to colorize like the driver would: picklable, paths absolute."""

    out_dir: str
    model: str  # the model file, resolved by the driver
    backend: str  # torch or onnx: the driver's resolved choice, so every node computes alike
    precision: str  # fp32, bf16 or int8, likewise resolved
    size: int | None = None
    batch_size: int = 32
    smoothing: str | None = None
    temperature: float = 0.0
    hue: float = 0.0
    saturation: float = 1.0
    reference: str | None = None
    overwrite: bool = False
    threads: int = 1  # the actor's CPU threads (torch and onnxruntime); its Ray num_cpus too

    def identity(self) -> dict[str, Any]:
        """The options that decide the outputs' bytes: a resumed run must use the same."""
        same = asdict(self)
        for free in ("out_dir", "overwrite", "threads"):
            same.pop(free)
        return same


@dataclass
class ArchiveReport:
    written: int = 0  # outputs written by this run
    already_done: int = 0  # outputs an earlier run of this job finished (the journal says so)
    failed: dict[str, str] = field(default_factory=dict)  # photo -> reason
    messages: list[str] = field(default_factory=list)  # one line per failure, as on stderr
    nodes: dict[str, int] = field(default_factory=dict)  # Ray node id -> outputs written there
    startup_s: float = 0.0  # connecting to (or starting) Ray

    @property
    def ok(self) -> bool:
        return not self.failed


# --- the journal -------------------------------------------------------------------------

def journal_dir(out_dir: Path) -> Path:
    return Path(out_dir) / JOURNAL


def read_journal(out_dir: Path) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """(target -> its last ``done`` record, targets whose last line is a ``start``), targets
    relative to DST. A line a killed writer left half-written is ignored."""
    done: dict[str, dict[str, Any]] = {}
    last: dict[str, str] = {}
    folder = journal_dir(out_dir)
    if folder.is_dir():
        for path in sorted(folder.glob("*.jsonl")):
            _read(_records(path), done, last)
    return done, {target for target, state in last.items() if state == "start"}


def _read(records: Iterable[dict[str, Any]], done: dict[str, dict[str, Any]], last: dict[str, str]) -> None:
    for record in records:
        state = record.get("state")
        last[record["target"]] = state
        if state == "done":
            done[record["target"]] = record


def _records(path: Path) -> Iterable[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("target"), str):
            yield record


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def open_job(out_dir: Path, identity: Mapping[str, Any], inputs: Sequence[str]) -> bool:
    """Start the journal, or continue it; True when an earlier run of this job left one.

    A journal of other options is refused with one line: its outputs are another job's, and
    no run replaces an earlier run's outputs.
    """
    from chromalab.atomic import write_text_atomic

    folder = journal_dir(out_dir)
    job_file = folder / JOB_FILE
    wanted = {"inputs": list(inputs), "options": dict(identity)}
    if job_file.is_file():
        try:
            recorded = json.loads(job_file.read_text(encoding="utf-8"))
        except ValueError:
            raise ChromalabError(f"{job_file}: unreadable journal; remove {folder} to start this job afresh") from None
        if recorded.get("version") != 1 or {k: recorded.get(k) for k in wanted} != wanted:
            differ = sorted(k for k, v in wanted["options"].items() if recorded.get("options", {}).get(k) != v)
            what = ", ".join(differ) if differ else "inputs"
            raise ChromalabError(
                f"{out_dir} holds a --ray job with other {what}; resume it with its own command "
                f"({job_file} has it), or give another --out")
        return True
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(job_file, json.dumps({"version": 1, **wanted}, indent=1) + "\n")
    return False


def remove_temporaries(folders: Iterable[Path]) -> int:
    """Delete the temporary files a killed run left (chromalab's own names only); how many."""
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


class _ChunkJournal:
    """The append-only journal file of one chunk, written by the one worker running it.

    Line-buffered: each line is one write(2), in the kernel before the next photo starts, so a
    SIGKILL loses at most a line being written (which readers skip).
    """

    def __init__(self, path: Path, node: str, pid: int) -> None:
        self.path, self.node, self.pid = path, node, pid
        self._lock = threading.Lock()  # the writer thread and the main loop both append
        self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 — closed in close()

    def append(self, **record: Any) -> None:
        line = json.dumps({**record, "node": self.node, "pid": self.pid, "time": round(time.time(), 3)})
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()


# --- the actors --------------------------------------------------------------------------

class ColorizeActor:
    """One Ray actor: loads the model once, then colorizes chunk after chunk into DST."""

    settings: ArchiveSettings  # set on the per-job subclass that _stream makes

    def __init__(self) -> None:
        import ray
        import torch

        from chromalab.inference import onnx_backend as onnx
        from chromalab.inference.colorizer import Colorizer
        from chromalab.inference.controls import ColorControls, make_ab_transform

        settings = self.settings
        torch.set_num_threads(settings.threads)  # actors x threads = the node's cores
        self.colorizer = Colorizer.load(settings.model, backend=settings.backend, precision=settings.precision)
        if isinstance(self.colorizer.backend, onnx.OnnxBackend):  # onnxruntime would take every core
            self.colorizer.backend = onnx.OnnxBackend(self.colorizer.backend.path, threads=settings.threads)
        if settings.smoothing is not None:
            from chromalab.inference.smoothing import parse_smoothing

            self.colorizer.smoothing = parse_smoothing(settings.smoothing)
        self.ab_transform = make_ab_transform(ColorControls(settings.temperature, settings.hue,
                                                            settings.saturation, settings.reference))
        self.node = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {key: [] for key in ("source", "target", "error", "node", "pid")}
        for chunk, jobs in zip(batch["chunk"], batch["jobs"]):
            for source, target, error, node, pid in self._colorize_chunk(int(chunk), json.loads(str(jobs))):
                for key, value in zip(rows, (source, target, error, node, pid)):
                    rows[key].append(value)
        return rows

    def _colorize_chunk(self, chunk: int, items: list[list[Any]]) -> list[tuple[str, str, str, str, int]]:
        """Each job of the chunk that was to do: (source, target, error or "", node, pid)."""
        from chromalab.inference.colorize import ColorizeReport, Job, colorize_chunks
        from chromalab.inference.points import ColorPoint

        out_dir = Path(self.settings.out_dir)
        jobs = [Job(Path(source), out_dir / target) for source, target, _, _ in items]
        skip = {out_dir / target for _, target, done, _ in items if done}
        points = {Path(source): [ColorPoint(*p) for p in chosen] for source, _, _, chosen in items if chosen}
        path = journal_dir(out_dir) / f"chunk-{chunk:07d}.jsonl"
        # A retry of this chunk (its first actor died): what that actor finished is not redone.
        earlier_done: dict[str, dict[str, Any]] = {}
        last: dict[str, str] = {}
        _read(_records(path), earlier_done, last)
        earlier_started = {target for target, state in last.items() if state == "start"}
        results: list[tuple[str, str, str, str, int]] = []
        journal = _ChunkJournal(path, self.node, self.pid)
        try:
            for source, target, done, _ in items:
                if done:
                    continue
                finished = earlier_done.get(target)
                if finished is not None and _size(out_dir / target) == finished.get("bytes"):
                    skip.add(out_dir / target)
                    results.append((source, target, "", finished.get("node", ""), finished.get("pid", 0)))
                elif target in earlier_started and not self.settings.overwrite and (out_dir / target).exists():
                    # Renamed into place, then killed before its done line: the file is whole.
                    skip.add(out_dir / target)
                    journal.append(target=target, source=source, state="done", bytes=_size(out_dir / target),
                                   recovered=True)
                    results.append((source, target, "", self.node, self.pid))

            def before_write(job: Job) -> None:
                journal.append(target=job.target.relative_to(out_dir).as_posix(), state="start")

            def on_done(job: Job, reason: str | None) -> None:
                target = job.target.relative_to(out_dir).as_posix()
                if reason is None:
                    journal.append(target=target, source=str(job.source), state="done", bytes=_size(job.target))
                else:
                    journal.append(target=target, source=str(job.source), state="failed", reason=reason)
                results.append((str(job.source), target, reason or "", self.node, self.pid))

            colorize_chunks(
                self.colorizer, [jobs], ColorizeReport(), size=self.settings.size,
                batch_size=self.settings.batch_size, overwrite=self.settings.overwrite,
                protected=frozenset(_resolved(job.source) for job in jobs), ab_transform=self.ab_transform,
                points=points, on_error=lambda message: None, skip=frozenset(skip),
                before_write=before_write, on_done=on_done,
            )
        finally:
            journal.close()
        return results


def _resolved(path: Path) -> Path:
    from chromalab.data.images import resolved

    return resolved(path)


# --- the driver --------------------------------------------------------------------------

def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` ("auto": the one running here), or start a local one
    (None or LOCAL); True when this call started Ray (and so must stop it)."""
    import ray

    if ray.is_initialized():  # a program (or a test) that set Ray up itself
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                               "log_to_driver": False}
    try:
        if address in (None, LOCAL):
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except ConnectionError as error:
        raise ChromalabError(f"--ray {address}: cannot connect to a Ray cluster ({error})") from None
    return True


def default_actors(threads: int) -> int:
    """As many actors as the cluster has cores for: actors x threads = cores."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)


def run_archive(
    jobs: Sequence[Any],
    settings: ArchiveSettings,
    inputs: Sequence[str],
    missing: Mapping[Path, str],
    address: str | None = None,
    actors: int | None = None,
    points: Mapping[Path, Sequence[Any]] | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ArchiveReport:
    """Colorize ``jobs`` (from plan_jobs) on Ray; resumes this job's journal in DST if any.

    ``missing``: the inputs plan_jobs could not find (reported like bad photos). ``on_total``
    gets the number of photos still to do once known, ``on_progress`` each finished photo's
    count as results stream back to the driver.
    """
    from chromalab.inference.colorize import ColorizeReport, check_jobs, chunked, fail_all_if_unwritable

    report = ArchiveReport()
    out_dir = Path(settings.out_dir)

    def fail(source: str, reason: str, message: str | None = None) -> None:
        report.failed[source] = reason
        report.messages.append(message or f"{source}: {reason}")

    for path, reason in missing.items():
        fail(str(path), reason)
    if not jobs:
        return report
    if fail_all_if_unwritable(out_dir, jobs, report.failed, report.messages.append, key=str):
        return report

    resuming = open_job(out_dir, settings.identity(), inputs)
    if resuming:
        remove_temporaries({job.target.parent for job in jobs})
    done, started = read_journal(out_dir)
    own: set[Path] = set()  # outputs an earlier run of this job finished
    recovered: list[tuple[Any, int | None]] = []
    for job in jobs:
        target = job.target.relative_to(out_dir).as_posix()
        size = _size(job.target)
        if size is None:
            continue  # never written, or removed since: to do
        if target in done and done[target].get("bytes") == size:
            own.add(job.target)
        elif target in started and not settings.overwrite:
            own.add(job.target)  # renamed into place, then killed before its done line
            recovered.append((job, size))
    if recovered:
        with open(journal_dir(out_dir) / RECOVERED_FILE, "a", encoding="utf-8") as journal:
            for job, size in recovered:
                journal.write(json.dumps({"target": job.target.relative_to(out_dir).as_posix(),
                                          "source": str(job.source), "state": "done", "bytes": size,
                                          "recovered": True, "time": round(time.time(), 3)}) + "\n")
    conflicts = ColorizeReport()
    pending = check_jobs(jobs, settings.overwrite, conflicts,
                         on_error=lambda message: report.messages.append(message), own=frozenset(own))
    report.failed.update({str(source): reason for source, reason in conflicts.failed.items()})
    report.already_done = sum(job.target in own for job in pending)

    # The chunks of the single-machine command over the same list (finished photos included, so
    # the batches are the same); a chunk with nothing left to do is not sent at all.
    rows = []
    for number, chunk in enumerate(chunked(pending, settings.batch_size)):
        if all(job.target in own for job in chunk):
            continue
        items = [[os.path.abspath(job.source), job.target.relative_to(out_dir).as_posix(), job.target in own,
                  [[p.x, p.y, p.color, p.radius] for p in (points or {}).get(job.source, ())]]
                 for job in chunk]
        rows.append({"chunk": number, "jobs": json.dumps(items)})
    total = len(pending) - report.already_done
    if on_total:
        on_total(total)
    if not rows:
        _write_failed(out_dir, report)
        return report
    given = {os.path.abspath(job.source): str(job.source) for job in pending}  # messages name them as given

    started_at = time.perf_counter()
    started_here = connect(address)
    report.startup_s = time.perf_counter() - started_at
    try:
        for results in _stream(rows, settings, actors or default_actors(settings.threads)):
            for result in results:
                source = given.get(result["source"], result["source"])
                if result["error"]:
                    fail(source, result["error"])
                else:
                    report.written += 1
                    report.nodes[result["node"]] = report.nodes.get(result["node"], 0) + 1
            if on_progress and results:
                on_progress(len(results))
    finally:
        if started_here:
            import ray

            ray.shutdown()
    _write_failed(out_dir, report)
    return report


def _stream(rows: list[dict[str, Any]], settings: ArchiveSettings, actors: int) -> Iterable[list[dict[str, Any]]]:
    """Ray Data batch inference: the chunks through a pool of ``actors`` ColorizeActors; the
    photos' results as they come back, a block at a time."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver draws one bar of its own
    context.print_on_execution_start = False
    # Photos go out once every actor holds its model, not all to the first one ready; a pool
    # the cluster cannot place fails after this long instead of waiting for ever.
    context.wait_for_min_actors_s = ACTORS_TIMEOUT_S
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # One chunk per block: a chunk is the unit of work, of retry and of progress. A few chunks
    # per call once there are many keep an actor's decode / network / write stages overlapping.
    per_call = 1 if len(rows) < actors * 32 else 4
    actors = min(actors, -(-len(rows) // per_call))  # no more actors than calls to make
    # The settings travel in the actor class itself (pickled with it), not as constructor
    # arguments in the object store, where a restart after losing them would fail.
    actor_class = type("ColorizeActor", (ColorizeActor,), {"settings": settings})
    with warnings.catch_warnings():
        # Ray 2.5x deprecates passing actor options (max_restarts, ...) through map_batches'
        # keywords but offers no other way for them yet.
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = _map(ray, rows, actor_class, per_call, actors, settings.threads)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        yield [{key: batch[key][index].item() if hasattr(batch[key][index], "item") else batch[key][index]
                for key in batch} for index in range(len(batch["source"]))]


def _map(ray: Any, rows: list[dict[str, Any]], actor_class: type, per_call: int, actors: int, threads: int) -> Any:
    # One block per chunk (or a few, past MAX_BLOCKS chunks: putting a million small blocks
    # would cost the driver more than it gains).
    return ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS)).map_batches(
        actor_class,
        batch_size=per_call,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads,
        # A dead actor (a worker or its node killed) is replaced and its chunks retried, as
        # often as it takes: the journal keeps a retry from writing anything twice.
        max_restarts=-1,
        max_task_retries=-1,
    )


def _write_failed(out_dir: Path, report: ArchiveReport) -> None:
    """This run's bad photos, one "path<TAB>reason" line each, in the journal's folder."""
    from chromalab.atomic import write_text_atomic

    folder = journal_dir(out_dir)
    if folder.is_dir():
        write_text_atomic(folder / FAILED_FILE,
                          "".join(f"{path}\t{reason}\n" for path, reason in sorted(report.failed.items())))
