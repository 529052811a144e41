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

For a drift monitor, per version (serving/dataplane.py decides what is observed):
`riskpipe_serving_score{model_name,version}`, a histogram of the scores
returned over 20 equal-width bins of [0, 1] (PSI's usual binning), and per
input feature the counters `riskpipe_serving_feature_values_total`,
`riskpipe_serving_feature_value_sum_total` (numeric features only) and
`riskpipe_serving_feature_missing_total`, labelled `{model_name,version,feature}`,
of every Nth transaction only (--feature_stats_sample_every). A value that is not a
finite number is never observed: NaN is how serving_raw marks a missing
feature, and one infinity would make a sum useless for good. The sum is a
counter, which rate() reads right for features never negative, as riskpipe's are.

The exposition text is written here rather than by prometheus_client's
registry, which would rename counters to `*_total`.
"""
import bisect
import dataclasses
import threading
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from common.serving_contract import (FEATURE_MISSING, FEATURE_VALUE_SUM, FEATURE_VALUES,
                                     LOAD_ATTEMPT_COUNT, MODEL_CPU_SECONDS, REQUEST_COUNT,
                                     REQUEST_LATENCY, RUNTIME_LATENCY, SCORE)

# TF Serving's request latency buckets: 10us * 1.8^i, 33 buckets.
LATENCY_BUCKETS_US = tuple(10.0 * 1.8 ** index for index in range(33))
# Upper bounds 0.05, 0.1, ... 1.0 (rounded: 0.05 * 3 is not 0.15 in binary).
SCORE_BUCKETS = tuple(round(0.05 * index, 2) for index in range(1, 21))
_BUCKETS = {REQUEST_LATENCY: LATENCY_BUCKETS_US, RUNTIME_LATENCY: LATENCY_BUCKETS_US,
            SCORE: SCORE_BUCKETS}


_HELP = {
    REQUEST_COUNT: "The total number of requests.",
    REQUEST_LATENCY: "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
    RUNTIME_LATENCY: "Distribution of wall time (in microseconds) for Tensorflow runtime.",
    LOAD_ATTEMPT_COUNT: "The number of times a SavedModel was successfully loaded.",
    MODEL_CPU_SECONDS: "CPU seconds of the server process while the version's model calls ran.",
    SCORE: "Scores the version returned: fraud_probability, Classify's positive-class score, "
           "Regress's output.",
    FEATURE_VALUES: "Values of the input feature the version was sent, missing ones excluded, "
                    "in every Nth transaction it answered (N: --feature_stats_sample_every).",
    FEATURE_VALUE_SUM: "Sum of the numeric input feature's values the version was sent, in "
                       "every Nth transaction it answered (N: --feature_stats_sample_every).",
    FEATURE_MISSING: "Missing values (NaN, or absent from a tf.Example) of the input feature "
                     "the version was sent, in every Nth transaction it answered "
                     "(N: --feature_stats_sample_every).",
}

Labels = Tuple[Tuple[str, str], ...]


class _Histogram:
    def __init__(self, bounds: Sequence[float]):
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, values: Sequence[float]) -> None:
        for value in values:
            # The first bucket whose upper bound is >= value, as Prometheus' `le` reads.
            self.buckets[bisect.bisect_left(self.bounds, value)] += 1
        self.total += sum(values)
        self.count += len(values)


def _finite(values: Iterable[float]) -> List[float]:
    # The comparison is False for NaN and both infinities.
    return [value for value in values if -float("inf") < value < float("inf")]


@dataclasses.dataclass
class FeatureStats:
    """What requests sent of one input feature; `total` is None for a string feature."""
    total: Optional[float] = None
    values: int = 0
    missing: int = 0

    @classmethod
    def empty(cls, numeric: bool) -> "FeatureStats":
        # A numeric feature's sum is 0 before any value, so it is exported from the start.
        return cls(total=0.0 if numeric else None)

    def add(self, values: Sequence, numeric: bool) -> None:
        """Counts one tensor's or one tf.Example feature's values; a non-finite number is
        missing."""
        if not numeric:
            self.values += len(values)
            return
        present = _finite(values)
        self.values += len(present)
        self.missing += len(values) - len(present)
        self.total = (self.total or 0.0) + sum(present)


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
            REQUEST_COUNT: {}, LOAD_ATTEMPT_COUNT: {}, MODEL_CPU_SECONDS: {},
            FEATURE_VALUES: {}, FEATURE_VALUE_SUM: {}, FEATURE_MISSING: {}}
        self._histograms: Dict[str, Dict[Labels, _Histogram]] = {
            REQUEST_LATENCY: {}, RUNTIME_LATENCY: {}, SCORE: {}}
        self._cpu_clock = cpu_clock
        self._cpu_seen = cpu_clock()
        self._calls_running: Dict[int, Labels] = {}

    def _add(self, name: str, labels: Labels, amount: float) -> None:
        # With the lock held.
        series = self._counters[name]
        series[labels] = series.get(labels, 0) + amount

    def _increment(self, name: str, labels: Labels) -> None:
        with self._lock:
            self._add(name, labels, 1)

    def _histogram(self, name: str, labels: Labels) -> _Histogram:
        # With the lock held.
        series = self._histograms[name]
        histogram = series.get(labels)
        if histogram is None:
            histogram = series[labels] = _Histogram(_BUCKETS[name])
        return histogram

    def _observe(self, name: str, labels: Labels, value: float) -> None:
        with self._lock:
            self._histogram(name, labels).observe((value,))

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

    def record_scores(self, model_name: str, version: str, scores: Iterable[float]) -> None:
        """Scores a version returned."""
        present = _finite(scores)
        with self._lock:
            self._histogram(SCORE, (("model_name", model_name), ("version", version))).observe(
                present)

    def record_features(self, model_name: str, version: str,
                        stats: Mapping[str, FeatureStats]) -> None:
        """What a version was sent of each input feature."""
        with self._lock:
            for feature, stat in stats.items():
                labels = (("model_name", model_name), ("version", version), ("feature", feature))
                self._add(FEATURE_VALUES, labels, stat.values)
                # Written even when zero, so that a feature's missing share is 0, not absent.
                self._add(FEATURE_MISSING, labels, stat.missing)
                if stat.total is not None:
                    self._add(FEATURE_VALUE_SUM, labels, stat.total)

    def model_call(self, model_name: str, version: int) -> "_ModelCall":
        """Counts the process CPU while the block (one model call) runs towards its version."""
        return _ModelCall(self, (("model_name", model_name), ("version", str(version))))

    def _share_cpu(self) -> None:
        now = self._cpu_clock()
        if self._calls_running:
            share = (now - self._cpu_seen) / len(self._calls_running)
            for labels in self._calls_running.values():
                self._add(MODEL_CPU_SECONDS, labels, share)
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
    bounds = [f"{bound:.6g}" for bound in histogram.bounds] + ["+Inf"]
    for bound, count in zip(bounds, histogram.buckets):
        cumulative += count
        lines.append(f'{name}_bucket{{{_label_text(labels + (("le", bound),))}}} {cumulative}')
    lines.append(f"{name}_sum{{{_label_text(labels)}}} {_number(histogram.total)}")
    lines.append(f"{name}_count{{{_label_text(labels)}}} {histogram.count}")
    return lines


class _ModelCall:
    """ServingMetrics.model_call's context manager (a class: cheaper than a generator's)."""

    __slots__ = ("_metrics", "_labels")

    def __init__(self, metrics: ServingMetrics, labels: Labels):
        self._metrics = metrics
        self._labels = labels

    def __enter__(self) -> None:
        metrics = self._metrics
        with metrics._lock:  # pylint: disable=protected-access
            metrics._share_cpu()  # pylint: disable=protected-access
            metrics._calls_running[id(self)] = self._labels  # pylint: disable=protected-access

    def __exit__(self, *exc_info) -> None:
        metrics = self._metrics
        with metrics._lock:  # pylint: disable=protected-access
            metrics._share_cpu()  # pylint: disable=protected-access
            del metrics._calls_running[id(self)]  # pylint: disable=protected-access
