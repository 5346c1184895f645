"""Ray nodes started with ``ray start`` for a test, and stopped again by process id.

``ray stop`` would end every Ray process of the machine's user, other test runs' and other
programs' included; a test stops only the processes it started: those whose command line
names its own temp dir or its head's port, and their children.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = (parent, command)
    return found


def node_processes(marks: list[str]) -> set[int]:
    """The processes whose command line holds one of ``marks`` (a whole word: ``:6379`` is not
    ``:63790``), and all their descendants."""
    table = _processes()
    pattern = re.compile("|".join(f"{re.escape(mark)}(?![\\w.-])" for mark in marks))
    chosen = {pid for pid, (_, command) in table.items() if pattern.search(command)}
    chosen.discard(os.getpid())
    grew = True
    while grew:
        children = {pid for pid, (parent, _) in table.items() if parent in chosen} - chosen - {os.getpid()}
        chosen |= children
        grew = bool(children)
    return chosen


def stop_nodes(marks: list[str], timeout: float = 3.0) -> None:
    """SIGTERM the nodes' processes, then SIGKILL whatever is still there after ``timeout``."""
    pids = node_processes(marks)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            pids = {pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)}
            if not pids:
                return
            time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
