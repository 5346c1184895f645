"""SIGTERM stops a run of many trainings (a study, a sweep) the way Ctrl-C does.

``kill PID`` alone already works inside ``Trainer.fit``: Lightning notes the signal and raises
``SIGTERMException`` (a ``SystemExit``) at the next batch. But ``kill -- -PGID``, ``pkill -f``,
a container or a scheduler stopping the job signal the DataLoader workers too, and a worker
that dies first makes ``fit`` raise ``RuntimeError: DataLoader worker ... killed``. Without a
record of the signal that error reads as a broken entry, and the study marks it failed and
starts the next one: a stop request that starts more training.

``TerminationWatch`` installs a SIGTERM handler that remembers the signal and raises
``KeyboardInterrupt`` (so a signal outside ``fit``, e.g. while indexing photos, also stops);
Lightning composes its own handler with one already installed, so ours still runs during
``fit``. Callers ask ``watch.is_stop(error)`` before treating an error as a failure.

PyTorch's DataLoader also installs a SIGCHLD handler that raises "DataLoader worker ... killed"
whenever a worker dies. Once a stop is under way the workers dying of the same signal are
expected, and that handler would otherwise go off at any later point: while the one-line
message is printed, or in an exit hook, as a traceback. The watch switches it off for the rest
of the process when a stop is received or handled; the DataLoader still notices dead workers
by its own periodic check.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


STOP_SIGNALS_IN_WORKER_ERRORS = ("killed by signal: Terminated", "killed by signal: Interrupt")


def worker_stopped_by_signal(error: BaseException) -> bool:
    """True for fit()'s error when a DataLoader worker died of SIGTERM/SIGINT: a stop request
    sent to the whole process group that reached the worker before the main process."""
    text = str(error)
    return "DataLoader worker" in text and any(signal_name in text for signal_name in STOP_SIGNALS_IN_WORKER_ERRORS)


def _child_ended(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD handler that does nothing."""


def silence_worker_death_alarm() -> None:
    """Replace PyTorch's SIGCHLD alarm (see the module's note) by a handler that does nothing;
    main thread only. Not SIG_DFL: a SIGCHLD already pending would then be reported as "Signal 17
    ignored due to race condition"; and never SIG_IGN, which makes the kernel reap children
    before anyone can wait for them."""
    if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, _child_ended)


class TerminationWatch:
    """Context manager: SIGTERM while inside raises KeyboardInterrupt and sets ``received``."""

    def __init__(self) -> None:
        self.received = False
        self._quiet = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> TerminationWatch:
        # signal.signal works only in the main thread; elsewhere (a web worker, a test runner's
        # thread) the process's own SIGTERM behaviour is left as it is.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.received
        self.received = True
        silence_worker_death_alarm()
        # Once, and not while the caller is already stopping: a signal during the clean-up
        # must not interrupt it.
        if first and not self._quiet:
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    def quiet(self) -> None:
        """From now on a SIGTERM is only recorded (the caller is handling a stop or an error)."""
        self._quiet = True
        silence_worker_death_alarm()

    def is_stop(self, error: BaseException) -> bool:
        """Whether an error out of training is the stop request (ours, or a worker's death by it)."""
        return self.received or worker_stopped_by_signal(error)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
