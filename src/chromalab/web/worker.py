"""One inference thread for the whole server, and the models it has loaded.

Why a single worker thread rather than an asyncio lock: a model call is blocking CPU work.
Run on the event loop it would freeze the server (no page, no model list, no 413 answers
while a photo is being colorized); run in Starlette's thread pool it would let several
photos compete for the same cores and memory. A one-thread executor does both jobs: jobs
queue in arrival order, one photo (and one decoded image) is in memory at a time, and the
event loop stays free to accept and queue further requests.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from chromalab.inference.colorizer import Colorizer

T = TypeVar("T")
MAX_QUEUE = 8  # jobs waiting or running; one more is answered 503 with Retry-After


class QueueFull(Exception):
    """The server has as many jobs as it queues: the client should come back later."""


class Stopping(Exception):
    """The server is shutting down: the running job ends at its next photo or frame."""


class InferenceWorker:
    """Runs jobs one at a time on a dedicated thread; caches the last few loaded models."""

    def __init__(self, cached_models: int = 2, max_queue: int = MAX_QUEUE, precision: str = "auto") -> None:
        self.precision = precision  # every model runs in it (chromalab.inference.precision)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromalab-inference")
        self._models: OrderedDict[Path, Colorizer] = OrderedDict()
        self._cached_models = cached_models
        self._waiting = 0
        self._count_lock = threading.Lock()
        self.max_queue = max_queue
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def check_stopping(self) -> None:
        """Called by jobs between photos (and video frames): a stopping server ends them there."""
        if self._stopping.is_set():
            raise Stopping("the server is shutting down")

    @property
    def waiting(self) -> int:
        """Jobs submitted and not finished (the one running included)."""
        return self._waiting

    async def run(self, job: Callable[..., T], *args: object) -> T:
        """Queue ``job(*args)`` on the inference thread and wait for its result.

        Raises QueueFull, at once, when ``max_queue`` jobs are already waiting or running.
        """
        return await self.submit(job, *args)

    def submit(self, job: Callable[..., T], *args: object) -> "asyncio.Future[T]":
        """``run`` in two steps: queue now (or QueueFull), await the returned future later. For
        callers that record something only once the job is surely queued (color points)."""
        with self._count_lock:
            if self._waiting >= self.max_queue:
                raise QueueFull(f"{self._waiting} jobs are queued; try again shortly")
            self._waiting += 1
        future = self._executor.submit(job, *args)
        future.add_done_callback(self._finished)
        return asyncio.wrap_future(future)

    def _finished(self, _future: object) -> None:
        with self._count_lock:
            self._waiting -= 1

    def colorizer(self, model_file: Path) -> Colorizer:
        """The loaded model for ``model_file``; call only from a job (the inference thread)."""
        key = model_file.resolve()
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        colorizer = Colorizer.load(model_file, precision=self.precision)
        self._models[key] = colorizer
        while len(self._models) > self._cached_models:  # models can be large; keep a few
            self._models.popitem(last=False)
        return colorizer

    def close(self) -> None:
        """Cancel queued jobs and ask the running one to stop at its next photo or frame."""
        self._stopping.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
