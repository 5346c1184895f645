"""TerminationWatch: SIGTERM inside the block raises KeyboardInterrupt once and is remembered."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from chromalab.training.termination import TerminationWatch, worker_stopped_by_signal


def test_sigterm_inside_raises_keyboard_interrupt_and_is_remembered() -> None:
    before = signal.getsignal(signal.SIGTERM)
    watch = TerminationWatch()
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), watch:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # not reached: the handler raises at the next bytecode
    assert watch.received
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_second_sigterm_during_the_shutdown_does_not_interrupt_it() -> None:
    watch = TerminationWatch()
    cleaned_up = False
    with pytest.raises(KeyboardInterrupt), watch:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. a second `kill` while Lightning shuts down
            time.sleep(0.01)
            cleaned_up = True
    assert cleaned_up and watch.received


def test_without_a_signal_nothing_changes() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with TerminationWatch() as watch:
        assert signal.getsignal(signal.SIGTERM) != before
    assert not watch.received and signal.getsignal(signal.SIGTERM) == before


def test_outside_the_main_thread_it_installs_nothing() -> None:
    seen: list[object] = []

    def body() -> None:
        with TerminationWatch() as watch:
            seen.append(signal.getsignal(signal.SIGTERM))
        seen.append(watch.received)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before, False]


def test_a_dataloader_worker_killed_by_the_stop_signal_is_a_stop_not_a_failure() -> None:
    assert worker_stopped_by_signal(RuntimeError("DataLoader worker (pid 4242) is killed by signal: Terminated. "))
    assert worker_stopped_by_signal(RuntimeError("DataLoader worker (pid 7) is killed by signal: Interrupt. "))
    assert not worker_stopped_by_signal(RuntimeError("DataLoader worker (pid 7) is killed by signal: Killed. "))
    assert not worker_stopped_by_signal(RuntimeError("CUDA out of memory"))


def test_a_quiet_watch_records_a_signal_without_raising() -> None:
    with TerminationWatch() as watch:
        watch.quiet()
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode: recorded, nothing raised
        for _ in range(1000):
            if watch.received:
                break
    assert watch.received


STOPPED_WORKER_SCRIPT = """
import subprocess, sys, time
import torch
from chromalab.training.termination import TerminationWatch

batches = iter(torch.utils.data.DataLoader(range(64), batch_size=2, num_workers=1))
next(batches)  # the worker runs and PyTorch's SIGCHLD alarm is installed
with TerminationWatch() as watch:
    if sys.argv[1] == "quiet":
        watch.quiet()  # what a caller handling a stop does
    # The group's stop signal reaches the worker; from another process, as `kill` or `pkill` send
    # it (a worker exits quietly on a SIGTERM from its own parent).
    subprocess.run(["kill", "-TERM", str(batches._workers[0].pid)], check=True)
    time.sleep(1)
print("stopped cleanly")
"""


@pytest.mark.parametrize("handled", ["quiet", "not-quiet"])
def test_a_worker_dying_after_the_stop_is_handled_raises_nothing_later(handled: str) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", STOPPED_WORKER_SCRIPT, handled],
                            capture_output=True, text=True, timeout=60)
    if handled == "quiet":
        assert result.returncode == 0 and result.stdout.strip() == "stopped cleanly", result.stderr
        assert "Traceback" not in result.stderr and "Signal 17" not in result.stderr, result.stderr
    else:  # PyTorch's own alarm, which the watch switches off once a stop is being handled
        assert "DataLoader worker" in result.stderr and "killed by signal: Terminated" in result.stderr
