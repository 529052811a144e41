"""Server-side batching: concurrent requests merged into one model call.

Configured by TF Serving's BatchingParameters text proto. Requests for the same
version, signature and input layout queue together. A batch closes when it
holds max_batch_size rows or when its oldest request has waited
batch_timeout_micros, and runs as soon as one of num_batch_threads is free.
While one batch runs, the next one fills, which is what lifts throughput under
concurrency.

The scheduler lives on the server's event loop. With one batch thread, batches
run on the loop itself: a batch is what the loop would otherwise wait for, and
this saves a thread hand-off per batch, which is most of a small batch's cost
in Python. With more, batches run on a pool of that many threads.

A batch that fails is retried request by request, so one malformed request
fails alone instead of failing its neighbours.

With enable_large_batch_splitting, as in TF Serving, max_batch_size limits a
request and max_execution_batch_size limits a model call: a larger request is
split into chunks that are batched like any other, and its answer is the
chunks' outputs put back together in order.
"""
import asyncio
import collections
import dataclasses
import time
from concurrent import futures
from typing import Deque, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import grpc
import numpy as np

from common.errors import UsageError
from serving import errors
from serving.servable import Servable

# Defaults of TF Serving's SharedBatchScheduler / BatchingSession options.
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_NUM_BATCH_THREADS = 2


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    num_batch_threads: int = DEFAULT_NUM_BATCH_THREADS
    allowed_batch_sizes: Tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # 0: max_batch_size

    @property
    def execution_batch_size(self) -> int:
        """The most rows one model call takes."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size

    @classmethod
    def from_proto(cls, params, source: str = "batching parameters") -> "BatchingOptions":
        """From a BatchingParameters message; unset fields take TF Serving's defaults."""
        def wrapped(field: str, default: int) -> int:
            return getattr(params, field).value if params.HasField(field) else default
        options = cls(
            max_batch_size=wrapped("max_batch_size", DEFAULT_MAX_BATCH_SIZE),
            batch_timeout_micros=wrapped("batch_timeout_micros", 0),
            max_enqueued_batches=wrapped("max_enqueued_batches", DEFAULT_MAX_ENQUEUED_BATCHES),
            num_batch_threads=wrapped("num_batch_threads", DEFAULT_NUM_BATCH_THREADS),
            allowed_batch_sizes=tuple(params.allowed_batch_sizes),
            enable_large_batch_splitting=(params.enable_large_batch_splitting.value
                                          if params.HasField("enable_large_batch_splitting")
                                          else False),
            max_execution_batch_size=wrapped("max_execution_batch_size", 0),
        )
        options.validate(source)
        return options

    def validate(self, source: str) -> None:
        for field in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, field) < 1:
                raise UsageError(f"{source}: {field} must be >= 1")
        if self.batch_timeout_micros < 0:
            raise UsageError(f"{source}: batch_timeout_micros must be >= 0")
        if not 0 <= self.max_execution_batch_size <= self.max_batch_size:
            raise UsageError(f"{source}: max_execution_batch_size must be between 1 and "
                             f"max_batch_size ({self.max_batch_size})")
        sizes = list(self.allowed_batch_sizes)
        last = ("max_execution_batch_size" if self.enable_large_batch_splitting
                else "max_batch_size")
        if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.execution_batch_size):
            raise UsageError(f"{source}: allowed_batch_sizes must increase and end with "
                             f"{last} ({self.execution_batch_size})")


@dataclasses.dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    size: int
    enqueued: float
    future: asyncio.Future


@dataclasses.dataclass
class _Queue:
    servable: Servable
    signature_name: str
    output_keys: Tuple[str, ...]
    tasks: Deque[_Task] = dataclasses.field(default_factory=collections.deque)
    rows: int = 0  # in the open batch
    waiting_rows: int = 0  # in the open batch and in closed batches not yet running
    timer: Optional[asyncio.TimerHandle] = None


def _task_size(inputs: Mapping[str, np.ndarray]) -> int:
    sizes = set()
    for value in inputs.values():
        if value.ndim == 0:
            raise errors.invalid_argument(
                "Batching Run() input tensors must have at least one dimension")
        sizes.add(value.shape[0])
    if len(sizes) != 1:
        raise errors.invalid_argument(
            "Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()


def _queue_key(servable: Servable, signature_name: str, inputs: Mapping[str, np.ndarray],
               output_keys: Sequence[str]) -> tuple:
    # Only requests whose inputs can be concatenated share a queue.
    layout = tuple(sorted((alias, value.dtype.str, value.shape[1:])
                          for alias, value in inputs.items()))
    return (id(servable), signature_name, layout, tuple(output_keys))


class BatchScheduler:
    """Merges concurrent model calls on `loop`.

    `run_async` (on the loop) and `run` (from any other thread) have the
    signature of an inference runner.
    """

    def __init__(self, options: BatchingOptions, loop: asyncio.AbstractEventLoop):
        self.options = options
        self._loop = loop
        self._queues: Dict[tuple, _Queue] = {}
        self._threads = asyncio.Semaphore(options.num_batch_threads)
        self._pool = (futures.ThreadPoolExecutor(options.num_batch_threads,
                                                 thread_name_prefix="batch")
                      if options.num_batch_threads > 1 else None)
        self._running: Set[asyncio.Task] = set()
        self._stopping = False
        self._batches = 0
        self._tasks = 0

    async def run_async(self, servable: Servable, signature_name: str,
                        inputs: Mapping[str, np.ndarray],
                        output_keys: Sequence[str]) -> Dict[str, np.ndarray]:
        size = _task_size(inputs)
        if size > self.options.max_batch_size:
            raise errors.invalid_argument(
                f"Task size {size} is larger than maximum input batch size "
                f"{self.options.max_batch_size}")
        tasks = self._split(inputs, size)
        self._enqueue(servable, signature_name, output_keys, tasks)
        if len(tasks) == 1:
            return await tasks[0].future
        parts = await asyncio.gather(*(task.future for task in tasks), return_exceptions=True)
        for part in parts:
            if isinstance(part, BaseException):
                raise part
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def run(self, servable: Servable, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str]) -> Dict[str, np.ndarray]:
        """`run_async` from a thread other than the loop's (REST handlers)."""
        return asyncio.run_coroutine_threadsafe(
            self.run_async(servable, signature_name, inputs, output_keys), self._loop).result()

    def _split(self, inputs: Mapping[str, np.ndarray], size: int) -> List[_Task]:
        """One task per model call's worth of rows (a single task without splitting)."""
        chunk, now = self.options.execution_batch_size, time.monotonic()
        if size <= chunk:
            return [_Task(inputs, size, now, self._loop.create_future())]
        return [_Task({alias: value[start:start + chunk] for alias, value in inputs.items()},
                      min(chunk, size - start), now, self._loop.create_future())
                for start in range(0, size, chunk)]

    def _enqueue(self, servable: Servable, signature_name: str, output_keys: Sequence[str],
                 tasks: List[_Task]) -> None:
        """Queues a request's tasks together, or none of them when the queue is full."""
        if self._stopping:
            raise errors.unavailable("The batch scheduler is shutting down")
        key = _queue_key(servable, signature_name, tasks[0].inputs, output_keys)
        rows = sum(task.size for task in tasks)
        limit = self.options.execution_batch_size * self.options.max_enqueued_batches
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(servable, signature_name, tuple(output_keys))
        if queue.waiting_rows + rows > limit:
            self._forget_if_idle(key, queue)
            raise errors.unavailable(
                "The batch scheduling queue to which this task was submitted is full")
        queue.tasks.extend(tasks)
        queue.rows += rows
        queue.waiting_rows += rows
        self._schedule(key, queue)

    def _schedule(self, key: tuple, queue: _Queue) -> None:
        """Closes every full batch; the rest waits until its oldest task times out."""
        while queue.rows >= self.options.execution_batch_size:
            self._close(key, queue)
        if queue.tasks and queue.timer is None:
            delay = (queue.tasks[0].enqueued + self.options.batch_timeout_micros / 1e6
                     - time.monotonic())
            queue.timer = self._loop.call_later(max(delay, 0.0), self._timed_out, key, queue)

    def _timed_out(self, key: tuple, queue: _Queue) -> None:
        queue.timer = None
        if queue.tasks:
            self._close(key, queue)
            self._schedule(key, queue)

    def _close(self, key: tuple, queue: _Queue) -> None:
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        batch = self._loop.create_task(self._execute(key, queue, self._take(queue)))
        self._running.add(batch)
        batch.add_done_callback(self._running.discard)

    def _take(self, queue: _Queue) -> List[_Task]:
        tasks, rows = [], 0
        while queue.tasks and rows + queue.tasks[0].size <= self.options.execution_batch_size:
            task = queue.tasks.popleft()
            tasks.append(task)
            rows += task.size
        queue.rows -= rows
        return tasks

    def _forget_if_idle(self, key: tuple, queue: _Queue) -> None:
        if queue.waiting_rows == 0 and self._queues.get(key) is queue:
            del self._queues[key]

    def stats(self) -> Dict[str, int]:
        """How many model calls ran, how many tasks (requests, or their chunks when split)
        they answered, and how many rows wait for a batch thread."""
        queued_rows = sum(queue.waiting_rows for queue in list(self._queues.values()))
        return {"batches": self._batches, "tasks": self._tasks, "queued_rows": queued_rows}

    async def stop_async(self) -> None:
        """Runs the queued tasks now and waits for every batch to finish."""
        self._stopping = True
        for key, queue in list(self._queues.items()):
            while queue.tasks:
                self._close(key, queue)
        await asyncio.gather(*list(self._running), return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown()

    def stop(self) -> None:
        """`stop_async` from a thread other than the loop's."""
        asyncio.run_coroutine_threadsafe(self.stop_async(), self._loop).result()

    # ------------------------------------------------------------ batches

    async def _execute(self, key: tuple, queue: _Queue, tasks: List[_Task]) -> None:
        async with self._threads:
            queue.waiting_rows -= sum(task.size for task in tasks)
            self._forget_if_idle(key, queue)
            self._batches += 1
            self._tasks += len(tasks)
            if self._pool is None:
                results = self._compute(queue, tasks)
            else:
                results = await self._loop.run_in_executor(self._pool, self._compute,
                                                           queue, tasks)
        for task, result in zip(tasks, results):
            if task.future.done():  # the caller has gone (a cancelled RPC)
                continue
            if isinstance(result, BaseException):
                task.future.set_exception(result)
            else:
                task.future.set_result(result)

    def _compute(self, queue: _Queue, tasks: List[_Task]) -> List[object]:
        """Each task's outputs, or the error that fails it."""
        try:
            outputs = self._run_batch(queue, tasks)
        except errors.ServingError as err:
            if len(tasks) == 1:
                return [err]
            # find the request that broke the batch
            return [result for task in tasks for result in self._compute(queue, [task])]
        except Exception as err:  # never leave a client waiting on a dead future
            return [errors.internal(f"batch failed: {err}") for _ in tasks]
        results, start = [], 0
        for task in tasks:
            results.append({key: value[start:start + task.size]
                            for key, value in outputs.items()})
            start += task.size
        return results

    def _run_batch(self, queue: _Queue, tasks: List[_Task]) -> Dict[str, np.ndarray]:
        total = sum(task.size for task in tasks)
        if len(tasks) == 1:
            inputs = tasks[0].inputs
        else:
            inputs = {alias: np.concatenate([task.inputs[alias] for task in tasks])
                      for alias in tasks[0].inputs}
        padded = self._padded_size(total)
        if padded > total:
            inputs = {alias: _pad(value, padded) for alias, value in inputs.items()}
        outputs = queue.servable.run(queue.signature_name, inputs, queue.output_keys)
        for key, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != padded:
                raise errors.ServingError(
                    grpc.StatusCode.INTERNAL,
                    f"Batched output tensor {key} has 0th dimension "
                    f"{value.shape[0] if value.ndim else 'none'}, expected {padded}")
        return {key: value[:total] for key, value in outputs.items()}

    def _padded_size(self, total: int) -> int:
        for size in self.options.allowed_batch_sizes:
            if size >= total:
                return size
        return total


def _pad(value: np.ndarray, size: int) -> np.ndarray:
    # Padding repeats the first row, as TF Serving's BatchingSession does.
    extra = np.repeat(value[:1], size - value.shape[0], axis=0)
    return np.concatenate([value, extra])
