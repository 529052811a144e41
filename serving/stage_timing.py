"""Where a request's time goes on the server: wall time per stage, for benchmarks.

Off unless a StageTimes is handed to ModelServer (benchmarks/serving_latency.py
does, in a server run of its own); then each gRPC request adds one sample to
each stage it passes through:

  parse      the request message parsed from its bytes (gRPC's deserializer)
  prepare    the operation up to its model call: servable resolved, signature
             checked, TensorProtos turned into arrays
  model      the model call (with batching: the wait for the batch, and the batch)
  respond    the operation after its model call: outputs into the response message
  handler    the whole RPC handler; what it holds beyond prepare, model and
             respond is the rest of the data plane (the request's metrics and
             telemetry), which the benchmark reports as `dataplane`
  serialize  the response message written to bytes (gRPC's serializer)

What is left of a client's latency (gRPC core on both sides, TLS, loopback,
the event loop, the client's stub) is the client's time less these.
"""
import collections
import json
import threading
import time
from typing import Callable, Dict, Generator, List

STAGES = ("parse", "prepare", "model", "respond", "handler", "serialize")


class StageTimes:
    """Samples in seconds by stage; appends are thread-safe."""

    def __init__(self):
        self._samples: Dict[str, List[float]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._samples[stage].append(seconds)

    def samples(self) -> Dict[str, List[float]]:
        with self._lock:
            return {stage: list(values) for stage, values in self._samples.items()}

    def write_json(self, path: str) -> None:
        with open(path, "w") as handle:
            json.dump(self.samples(), handle)

    def timed(self, stage: str, function: Callable[[object], object]) -> Callable[[object], object]:
        """`function` (e.g. gRPC's request parser), each call's wall time added to `stage`."""
        def timed(argument):
            started = time.perf_counter()
            try:
                return function(argument)
            finally:
                self.add(stage, time.perf_counter() - started)
        return timed

    def timed_operation(self, operation: Generator) -> Generator:
        """The operation, its steps before and after its model calls timed."""
        outputs, stage = None, "prepare"
        while True:
            started = time.perf_counter()
            try:
                call = operation.send(outputs)
            except StopIteration as done:
                self.add(stage, time.perf_counter() - started)
                return done.value
            self.add(stage, time.perf_counter() - started)
            stage = "respond"
            outputs = yield call
