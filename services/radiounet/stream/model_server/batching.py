"""Server-side batching: merge concurrent Predict requests into one model call.

Like TF Serving's ``--enable_batching``: a request joins a queue; a batch
thread takes requests in arrival order until they hold ``max_batch_size``
examples (dimension 0) or the oldest has waited ``batch_timeout_micros``,
runs the model once on their concatenation and splits the outputs back.
Callers sending many small requests at once (the tiler keeps several in
flight) thus fill the model's batch, which is what keeps a few CPU cores busy.
As in TF Serving, a request larger than ``max_batch_size`` is refused
(INVALID_ARGUMENT) and a full queue answers UNAVAILABLE (the client retries).
Every batch is counted, by its number of examples, in TF Serving's
``/tensorflow/serving/batching_session/processed_batch_size`` histogram.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

from .metrics import PROCESSED_BATCH_SIZE, Sampler
from .status import ServingError

__all__ = ["Batcher", "BatchingOptions", "parse_batching_parameters"]

Arrays = Mapping[str, NDArray[Any]]


def available_cpus() -> int:
    """CPUs this process may run on (TF Serving's ``port::MaxParallelism``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchingOptions:
    """Batching settings, named after TF Serving's ``BatchingParameters``.

    Attributes
    ----------
    enabled : bool
        Merge concurrent requests (TF Serving's default is off; this server's is on).
    max_batch_size : int
        Most examples (tiles) in one model call.
    batch_timeout_micros : int
        Longest the oldest queued request waits for others, µs.
    num_batch_threads : int
        Model calls that may run at once; by default, as in TF Serving, the
        CPUs this process may use (one call's serial parts leave cores idle
        that another call fills).
    max_enqueued_batches : int
        Queue bound, in batches of ``max_batch_size``.
    """

    enabled: bool = True
    max_batch_size: int = 64
    batch_timeout_micros: int = 5_000
    num_batch_threads: int = field(default_factory=available_cpus)
    max_enqueued_batches: int = 100

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")


_FIELD = re.compile(r"(\w+)\s*\{\s*value\s*:\s*(\w+)\s*\}")


_KNOWN = ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches")


def parse_batching_parameters(text: str, base: BatchingOptions | None = None) -> BatchingOptions:
    """Read TF Serving's ``--batching_parameters_file`` (text format) over ``base``.

    Fields other than the four of :class:`BatchingOptions` (such as
    ``allowed_batch_sizes``, padding) are accepted and ignored.

    >>> parse_batching_parameters(
    ...     "max_batch_size { value: 32 } batch_timeout_micros { value: 0 } "
    ...     "num_batch_threads { value: 1 }")
    BatchingOptions(enabled=True, max_batch_size=32, batch_timeout_micros=0, \
num_batch_threads=1, max_enqueued_batches=100)
    """
    values: dict[str, int] = {}
    for name, value in _FIELD.findall(text):
        if name in _KNOWN:
            try:
                values[name] = int(value)
            except ValueError as exc:
                raise ValueError(f"batching parameter {name}: {value!r} is not an integer") from exc
    return replace(base or BatchingOptions(), enabled=True, **values)


@dataclass
class _Task:
    inputs: Arrays
    size: int
    key: tuple[Any, ...]
    future: Future[dict[str, NDArray[Any]]]
    enqueued: float


def _compat_key(inputs: Arrays) -> tuple[Any, ...]:
    # Requests merge only when every input agrees beyond dimension 0.
    return tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in inputs.items()))


class Batcher:
    """Queue requests and run them in merged batches on background threads.

    Parameters
    ----------
    run : callable
        Runs the model on a batch: inputs by name -> outputs by name, every
        array with the batch as dimension 0.
    options : BatchingOptions
    name : str
        Thread-pool name (the ``thread_pool_name`` label of the queuing metric).
    on_queued : callable or None
        Called with each request's seconds in the queue.
    on_batch : callable or None
        Called with the number of requests and examples of each model call.
    processed_batch_size : Sampler
        Histogram of examples per batch (label-less), recorded as each batch is
        formed, before the model runs, as TF Serving does; default the
        process-wide :data:`~.metrics.PROCESSED_BATCH_SIZE`.
    """

    def __init__(
        self,
        run: Callable[[Arrays], Mapping[str, NDArray[Any]]],
        options: BatchingOptions,
        *,
        name: str = "batch_threads",
        on_queued: Callable[[float], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        processed_batch_size: Sampler = PROCESSED_BATCH_SIZE,
    ) -> None:
        if processed_batch_size.labels:
            raise ValueError(
                f"processed_batch_size must have no labels, got {processed_batch_size.labels}"
            )
        self._run = run
        self.options = options
        self.name = name
        self._on_queued = on_queued
        self._on_batch = on_batch
        self._processed_batch_size = processed_batch_size
        self._timeout_s = options.batch_timeout_micros / 1e6
        self._capacity = options.max_enqueued_batches * options.max_batch_size
        self._queue: deque[_Task] = deque()
        self._queued_examples = 0
        self._closed = False
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Arrays) -> Future[dict[str, NDArray[Any]]]:
        """Queue one request; its future yields its own slice of the outputs.

        Raises
        ------
        ServingError
            INVALID_ARGUMENT if inputs disagree on dimension 0 or exceed
            ``max_batch_size``; UNAVAILABLE if the queue is full or closed.
        """
        sizes = {int(v.shape[0]) if v.ndim else -1 for v in inputs.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise ServingError.invalid_argument(
                "Batching Run() input tensors must have equal 0th-dimension size"
            )
        size = sizes.pop()
        if size > self.options.max_batch_size:
            raise ServingError.invalid_argument(
                f"Task size {size} is larger than maximum input batch size "
                f"{self.options.max_batch_size}"
            )
        task = _Task(dict(inputs), size, _compat_key(inputs), Future(), time.monotonic())
        with self._cond:
            if self._closed:
                raise ServingError.unavailable("servable is unloading; retry")
            if self._queued_examples + size > self._capacity:
                raise ServingError.unavailable(
                    "The batch scheduling queue to which this task was submitted is full"
                )
            self._queue.append(task)
            self._queued_examples += size
            self._cond.notify()
        return task.future

    def close(self) -> None:
        """Run what is queued, then stop the threads (new requests get UNAVAILABLE)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        while True:
            tasks = self._next_batch()
            if tasks is None:
                return
            self._execute(tasks)

    def _next_batch(self) -> list[_Task] | None:
        with self._cond:
            while True:
                if not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                # Re-read the head every time: another batch thread may have taken it.
                head = self._queue[0]
                ready = sum(t.size for t in self._queue if t.key == head.key)
                remaining = head.enqueued + self._timeout_s - time.monotonic()
                if ready >= self.options.max_batch_size or remaining <= 0 or self._closed:
                    return self._take(head.key)
                self._cond.wait(remaining)

    def _take(self, key: tuple[Any, ...]) -> list[_Task]:
        # Arrival order; a request that does not fit stays queued for the next batch.
        taken: list[_Task] = []
        kept: deque[_Task] = deque()
        total = 0
        while self._queue:
            task = self._queue.popleft()
            if task.key == key and total + task.size <= self.options.max_batch_size:
                taken.append(task)
                total += task.size
            else:
                kept.append(task)
                if total >= self.options.max_batch_size:
                    break
        kept.extend(self._queue)
        self._queue = kept
        self._queued_examples -= total
        return taken

    def _execute(self, tasks: list[_Task]) -> None:
        started = time.monotonic()
        if self._on_queued is not None:
            for task in tasks:
                self._on_queued(started - task.enqueued)
        sizes = [t.size for t in tasks]
        # No allowed_batch_sizes here, so no padding: the processed size is the sum.
        self._processed_batch_size.add(sum(sizes))
        try:
            if len(tasks) == 1:
                batch: Arrays = tasks[0].inputs
            else:
                batch = {k: np.concatenate([t.inputs[k] for t in tasks]) for k in tasks[0].inputs}
            outputs = self._run(batch)
            if self._on_batch is not None:
                self._on_batch(len(tasks), sum(sizes))
            parts = _split(outputs, sizes)
        except BaseException as exc:  # every waiting request must hear of it
            for task in tasks:
                task.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for task, part in zip(tasks, parts, strict=True):
            task.future.set_result(part)


def _split(outputs: Mapping[str, NDArray[Any]], sizes: list[int]) -> list[dict[str, NDArray[Any]]]:
    if len(sizes) == 1:
        return [dict(outputs)]
    total = sum(sizes)
    for key, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                f"Batched output {key!r} has {value.shape[0] if value.ndim else 0} rows for a "
                f"batch of {total}",
            )
    offsets = np.cumsum(sizes)[:-1]
    pieces = {k: np.split(v, offsets) for k, v in outputs.items()}
    return [{k: pieces[k][i] for k in outputs} for i in range(len(sizes))]
