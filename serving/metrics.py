"""Prometheus metrics under TF Serving's names, plus the served version.

Names and labels follow tensorflow_model_server's Prometheus export
(`:tensorflow:serving:request_count{model_name,status}`,
`:tensorflow:serving:request_latency{model_name,API,entrypoint}` in
microseconds, `:tensorflow:serving:runtime_latency{model_name,API,runtime}`,
`:tensorflow:cc:saved_model:load_attempt_count{model_path,status}`), so
dashboards built for TF Serving read them unchanged. Each request metric also
carries `version`, the numeric version that answered, which is what makes a
canary comparable with stable; TF Serving's own metrics cannot tell them apart.

riskpipe adds `riskpipe_serving_model_cpu_seconds_total{model_name,version}`:
the CPU seconds the process spent while each version's model calls ran, so a
fleet's serving cost can be split between stable and canary. TensorFlow runs a
call's kernels on its own threads, so the whole process's CPU time
(time.process_time) is read as each call starts and ends, and what passed
between two such moments is split equally between the calls running then.

The exposition text is written here rather than by prometheus_client's
registry, which would rename counters to `*_total`.
"""
import contextlib
import threading
import time
from typing import Callable, Dict, Iterator, List, Tuple

from common.serving_contract import (LOAD_ATTEMPT_COUNT, MODEL_CPU_SECONDS, REQUEST_COUNT,
                                     REQUEST_LATENCY, RUNTIME_LATENCY)

# TF Serving's request latency buckets: 10us * 1.8^i, 33 buckets.
LATENCY_BUCKETS_US = tuple(10.0 * 1.8 ** index for index in range(33))


_HELP = {
    REQUEST_COUNT: "The total number of requests.",
    REQUEST_LATENCY: "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
    RUNTIME_LATENCY: "Distribution of wall time (in microseconds) for Tensorflow runtime.",
    LOAD_ATTEMPT_COUNT: "The number of times a SavedModel was successfully loaded.",
    MODEL_CPU_SECONDS: "CPU seconds of the server process while the version's model calls ran.",
}

Labels = Tuple[Tuple[str, str], ...]


class _Histogram:
    def __init__(self):
        self.buckets = [0] * (len(LATENCY_BUCKETS_US) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        index = 0
        while index < len(LATENCY_BUCKETS_US) and value > LATENCY_BUCKETS_US[index]:
            index += 1
        self.buckets[index] += 1
        self.total += value
        self.count += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(labels: Labels) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels)


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class ServingMetrics:
    """Thread-safe counters and histograms of one model server."""

    def __init__(self, cpu_clock: Callable[[], float] = time.process_time):
        self._lock = threading.Lock()
        self._counters: Dict[str, Dict[Labels, float]] = {
            REQUEST_COUNT: {}, LOAD_ATTEMPT_COUNT: {}, MODEL_CPU_SECONDS: {}}
        self._histograms: Dict[str, Dict[Labels, _Histogram]] = {REQUEST_LATENCY: {},
                                                                 RUNTIME_LATENCY: {}}
        self._cpu_clock = cpu_clock
        self._cpu_seen = cpu_clock()
        self._calls_running: Dict[int, Labels] = {}

    def _increment(self, name: str, labels: Labels) -> None:
        with self._lock:
            series = self._counters[name]
            series[labels] = series.get(labels, 0) + 1

    def _observe(self, name: str, labels: Labels, value: float) -> None:
        with self._lock:
            series = self._histograms[name]
            histogram = series.get(labels)
            if histogram is None:
                histogram = series[labels] = _Histogram()
            histogram.observe(value)

    def record_request(self, api: str, model_name: str, version: str, status: str,
                       latency_us: float, entrypoint: str = "GRPC") -> None:
        """One finished request; `status` is the gRPC code name (OK, NOT_FOUND...)."""
        self._increment(REQUEST_COUNT, (("model_name", model_name), ("status", status),
                                        ("version", version)))
        self._observe(REQUEST_LATENCY, (("model_name", model_name), ("API", api),
                                        ("entrypoint", entrypoint), ("version", version)),
                      latency_us)

    def record_runtime(self, api: str, model_name: str, version: str, latency_us: float) -> None:
        """Time inside the model call itself."""
        self._observe(RUNTIME_LATENCY, (("model_name", model_name), ("API", api),
                                        ("runtime", "TF2"), ("version", version)), latency_us)

    @contextlib.contextmanager
    def model_call(self, model_name: str, version: int) -> Iterator[None]:
        """Counts the process CPU while the block (one model call) runs towards its version."""
        labels = (("model_name", model_name), ("version", str(version)))
        call = object()
        with self._lock:
            self._share_cpu()
            self._calls_running[id(call)] = labels
        try:
            yield
        finally:
            with self._lock:
                self._share_cpu()
                del self._calls_running[id(call)]

    def _share_cpu(self) -> None:
        now = self._cpu_clock()
        if self._calls_running:
            share = (now - self._cpu_seen) / len(self._calls_running)
            series = self._counters[MODEL_CPU_SECONDS]
            for labels in self._calls_running.values():
                series[labels] = series.get(labels, 0.0) + share
        self._cpu_seen = now

    def record_load(self, model_path: str, ok: bool) -> None:
        self._increment(LOAD_ATTEMPT_COUNT, (("model_path", model_path),
                                             ("status", "success" if ok else "failure")))

    def exposition(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        lines: List[str] = []
        with self._lock:
            for name, series in self._counters.items():
                if not series:
                    continue
                lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} counter"]
                for labels, value in sorted(series.items()):
                    lines.append(f"{name}{{{_label_text(labels)}}} {_number(value)}")
            for name, series in self._histograms.items():
                if not series:
                    continue
                lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} histogram"]
                for labels, histogram in sorted(series.items()):
                    lines += _histogram_lines(name, labels, histogram)
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, labels: Labels, histogram: _Histogram) -> List[str]:
    lines, cumulative = [], 0
    bounds = [f"{bound:.6g}" for bound in LATENCY_BUCKETS_US] + ["+Inf"]
    for bound, count in zip(bounds, histogram.buckets):
        cumulative += count
        lines.append(f'{name}_bucket{{{_label_text(labels + (("le", bound),))}}} {cumulative}')
    lines.append(f"{name}_sum{{{_label_text(labels)}}} {_number(histogram.total)}")
    lines.append(f"{name}_count{{{_label_text(labels)}}} {histogram.count}")
    return lines
