"""colorize --ray: the single-machine outputs from a Ray cluster, resumable, nothing lost.

Real Ray, no mocks: a local Ray started here (2 CPUs), and two nodes started with ``ray start``
on this one machine (each with its own port and temp dir). Workers and drivers are killed with
SIGKILL halfway through a job, and the job still gives every output once, whole.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from chromalab.cli import main
from tests.conftest import synthetic_photo
from tests.raynodes import stop_nodes

ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install -e '.[ray]'")

JOURNAL = ".chromalab-journal"
# The test's own Ray, on loopback: no token to share between its processes, no usage report.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_env() -> Iterator[dict[str, str]]:
    saved = {key: os.environ.get(key) for key in RAY_ENV}
    os.environ.update(RAY_ENV)
    yield {**os.environ, **RAY_ENV}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def local_ray(ray_env: dict[str, str]) -> Iterator[str]:
    """A Ray of 2 CPUs started in this process (its own temp dir); its GCS address."""
    temp = tempfile.mkdtemp(prefix="cl-ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    try:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, object_store_memory=100 * 2**20,
                 logging_level="ERROR", log_to_driver=False)
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def make_photos(root: Path, count: int, size: tuple[int, int] = (48, 40)) -> Path:
    """``count`` small photos, PNG and JPEG, in nested folders."""
    for index in range(count):
        folder = root / ("a" if index % 2 else "b/deep")
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_photo(index, *size).save(folder / f"p{index:03d}{'.png' if index % 3 else '.jpg'}")
    return root


def outputs(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` but the journal, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and JOURNAL not in p.parts}


def journal(out: Path) -> list[dict]:
    records = []
    for path in sorted((out / JOURNAL).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass  # a line a killed worker left half-written
    return records


def done_counts(out: Path) -> Counter:
    return Counter(r["target"] for r in journal(out) if r.get("state") == "done")


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".chromalab-*") if p.is_file() and JOURNAL not in p.parts]


def single_machine(source: Path, out: Path, model: Path, *extra: str) -> int:
    return main(["colorize", str(source), "--model", str(model), "--out", str(out), *extra])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "chromalab", "colorize", *args]


def wait_for(condition, timeout: float, what: str, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_without_ray_one_line_and_exit_2(tmp_path: Path) -> None:
    synthetic_photo(0).save(tmp_path / "p.png")
    hide_ray = ("import sys; sys.modules['ray'] = None; sys.modules['ray.data'] = None; "
                "from chromalab.cli import main; "
                f"sys.exit(main(['colorize', {str(tmp_path / 'p.png')!r}, '--out', {str(tmp_path / 'o')!r}, '--ray']))")
    done = subprocess.run([sys.executable, "-c", hide_ray], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "chromalab colorize: error: --ray needs Ray: pip install 'chromalab[ray]'"]


@pytest.mark.slow
def test_local_ray_gives_the_single_machine_outputs(tiny_model: Path, tmp_path: Path, local_ray: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    source = make_photos(tmp_path / "in", 14)
    (source / "a" / "bad.jpg").write_text("not a photo")
    single, archive = tmp_path / "single", tmp_path / "archive"
    for out in (single, archive):  # the user's own files in DST: one where an output would go
        (out / "a").mkdir(parents=True)
        (out / "a" / "p001.png").write_bytes(b"the user's file")
        (out / "notes.txt").write_text("the user's notes")
    # --batch-size 3: several chunks, so the actors share the job; the same batches as the
    # single-machine command, so even the PyTorch backend gives the same bytes.
    assert single_machine(source, single, tiny_model, "--batch-size", "3") == 1
    capsys.readouterr()
    command = [str(source), "--model", str(tiny_model), "--out", str(archive), "--batch-size", "3"]
    code = main(["colorize", *command, "--ray"])
    stdout, stderr = capsys.readouterr()
    assert code == 1 and "colorized 13 photo(s)" in stdout
    assert "Traceback" not in stderr
    errors = stderr.strip().splitlines()
    assert len(errors) == 2
    assert any("bad.jpg" in line and "not an image" in line for line in errors)
    assert any("p001.png" in line and "exists (use --overwrite" in line for line in errors)
    report = (archive / JOURNAL / "failed.tsv").read_text()
    assert "bad.jpg\tnot an image" in report and "p001.png" in report
    assert outputs(archive) == outputs(single)  # byte for byte; the user's files untouched
    assert (archive / "a" / "p001.png").read_bytes() == b"the user's file"
    assert set(done_counts(archive).values()) == {1} and len(done_counts(archive)) == 13

    # The same command again: the journal says all is done; nothing is written twice.
    before = {p: p.stat().st_mtime_ns for p in archive.rglob("*") if p.is_file() and JOURNAL not in p.parts}
    code = main(["colorize", *command, "--ray"])
    stdout, stderr = capsys.readouterr()
    assert code == 1 and "colorized 0 photo(s)" in stdout and "13 done by an earlier run" in stdout
    assert before == {p: p.stat().st_mtime_ns for p in archive.rglob("*") if p.is_file() and JOURNAL not in p.parts}
    assert set(done_counts(archive).values()) == {1}

    # Other options into the same DST: another job's outputs are not this one's; one line.
    code = main(["colorize", *command, "--ray", "--size", "48"])
    stderr = capsys.readouterr().err
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "other size" in stderr


def forget_done_line(out: Path, target: str) -> None:
    """Drop ``target``'s done line from its chunk's journal: as if its worker died right after
    the output's rename, before it could write the line."""
    for path in (out / JOURNAL).glob("chunk-*.jsonl"):
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not (json.loads(line)["target"] == target
                                               and json.loads(line)["state"] == "done")]
        if kept != lines:
            path.write_text("".join(kept))


@pytest.mark.slow
def test_a_resume_keeps_what_a_killed_run_finished_and_removes_its_temporaries(
        tiny_model: Path, tmp_path: Path, local_ray: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_photos(tmp_path / "in", 8)
    archive = tmp_path / "archive"
    command = ["colorize", str(source), "--model", str(tiny_model), "--out", str(archive), "--batch-size", "2",
               "--ray"]
    assert main(command) == 0
    first = outputs(archive)
    # The state a SIGKILL leaves, made exactly: one output renamed into place without its done
    # line; one never renamed (its temporary file half-written, its done line never written).
    renamed, unfinished = "a/p001.png", "b/deep/p002.png"
    forget_done_line(archive, renamed)
    forget_done_line(archive, unfinished)
    (archive / unfinished).unlink()
    (archive / "b/deep/.chromalab-k1ll3d0x.png").write_bytes(first[unfinished][:100])
    (archive / "b/deep/.chromalab-notes.txt").write_text("the user's, not a temporary name")
    renamed_at = (archive / renamed).stat().st_mtime_ns
    capsys.readouterr()
    assert main(command) == 0
    stdout = capsys.readouterr().out
    assert "colorized 1 photo(s)" in stdout and "7 done by an earlier run" in stdout
    assert (archive / renamed).stat().st_mtime_ns == renamed_at  # kept, not written again
    assert (archive / "b/deep/.chromalab-notes.txt").is_file()
    (archive / "b/deep/.chromalab-notes.txt").unlink()
    assert outputs(archive) == first and not temporaries(archive)
    assert set(done_counts(archive).values()) == {1} and len(done_counts(archive)) == 8


@pytest.mark.slow
def test_a_worker_killed_halfway_is_replaced_and_the_job_completes(
        tiny_model: Path, tmp_path: Path, local_ray: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_photos(tmp_path / "in", 160, size=(96, 80))
    single, archive = tmp_path / "single", tmp_path / "archive"
    assert single_machine(source, single, tiny_model, "--batch-size", "2") == 0
    result: dict[str, int] = {}
    runner = threading.Thread(target=lambda: result.update(code=main(
        ["colorize", str(source), "--model", str(tiny_model), "--out", str(archive), "--batch-size", "2", "--ray"])))
    runner.start()
    try:
        wait_for(lambda: len(done_counts(archive)) >= 30, 120, "30 photos done")
        victim = next(r["pid"] for r in reversed(journal(archive)) if r.get("state") == "done" and alive(r["pid"]))
        os.kill(victim, signal.SIGKILL)
        killed_at = len(done_counts(archive))
    finally:
        runner.join(180)
    assert killed_at < 160, "the job ended before the kill: make it longer"
    assert result.get("code") == 0, capsys.readouterr()
    assert outputs(archive) == outputs(single)  # every output there, whole, the same bytes
    assert set(done_counts(archive).values()) == {1} and len(done_counts(archive)) == 160
    assert not temporaries(archive)
    # The killed actor's chunk in flight was retried (by its replacement, or by the other actor
    # when that one got there first: on this tiny job the race goes either way).
    assert victim in {r["pid"] for r in journal(archive) if r.get("state") == "done"}


@pytest.mark.slow
def test_driver_killed_halfway_then_the_same_command_finishes_the_rest(
        tiny_model: Path, tmp_path: Path, local_ray: str, ray_env: dict[str, str]) -> None:
    source = make_photos(tmp_path / "in", 160, size=(96, 80))
    single, archive = tmp_path / "single", tmp_path / "archive"
    assert single_machine(source, single, tiny_model, "--batch-size", "2") == 0
    # A second driver on the test's cluster, as a user's command: killed, then run again.
    command = cli(str(source), "--model", str(tiny_model), "--out", str(archive), "--batch-size", "2",
                  f"--ray={local_ray}")
    driver = subprocess.Popen(command, env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(done_counts(archive)) >= 30 or driver.poll() is not None, 120, "30 photos done")
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.wait(30)
    done_before = len(done_counts(archive))
    assert done_before < 160, "the job ended before the kill: make it longer"
    # Ray ends a dead driver's actors; the next run starts once they are gone.
    workers = {r["pid"] for r in journal(archive) if "pid" in r}
    wait_for(lambda: not any(alive(pid) for pid in workers), 60, "the dead driver's actors to end", step=0.2)
    again = subprocess.run(command, env=ray_env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    assert f"{done_before} done by an earlier run" in again.stdout or "done by an earlier run" in again.stdout
    assert outputs(archive) == outputs(single)
    assert set(done_counts(archive).values()) == {1} and len(done_counts(archive)) == 160
    assert not temporaries(archive)


@pytest.fixture
def two_nodes(tmp_path: Path, ray_env: dict[str, str]) -> Iterator[str]:
    """A head and a second node, 1 CPU each, started with ``ray start`` on this machine, each
    with its own temp dir; stopped by process id afterwards, even when the test fails."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    port, client_port = free_port(), free_port()
    temps = [tempfile.mkdtemp(prefix=f"cl-ray-{name}-", dir="/tmp") for name in ("head", "node")]
    common = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}",
                        "--include-dashboard=false", f"--temp-dir={temps[0]}", *common],
                       env=ray_env, check=True, capture_output=True, timeout=120)
        subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{port}", f"--temp-dir={temps[1]}", *common],
                       env=ray_env, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        stop_nodes([*temps, f":{port}"])
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_two_nodes_share_a_job(tiny_model: Path, tmp_path: Path, two_nodes: str, ray_env: dict[str, str]) -> None:
    source = make_photos(tmp_path / "in", 24)
    single, archive = tmp_path / "single", tmp_path / "archive"
    assert single_machine(source, single, tiny_model, "--batch-size", "2") == 0
    done = subprocess.run(cli(str(source), "--model", str(tiny_model), "--out", str(archive), "--batch-size", "2",
                              "--ray-actors", "2", "--ray", two_nodes),
                          env=ray_env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert outputs(archive) == outputs(single)
    by_node = Counter(r["node"] for r in journal(archive) if r.get("state") == "done")
    assert len(by_node) == 2 and sum(by_node.values()) == 24  # each node colorized photos
