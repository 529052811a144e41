"""The cost of each component execution of a local run: measured, priced, stored in MLMD.

LocalDagRunner runs the components one after another in this process and logs
"Component X is running." / "... is finished." around each. ComponentMeter
listens for those lines and reads the process tree's CPU time at each, while a
sampling thread follows its resident memory, so each component gets:

  wall seconds, CPU seconds (user + system of this process and of every child
  it started, Beam workers included), peak resident memory of the process tree,
  and the bytes of the artifacts it wrote.

A cached execution wrote nothing and ran nothing: it is recorded as cached, at
zero cost. The price model (CostConfig) turns resources into money, as
OpenCost does: cost = usage x hours x rate per resource,

  cpu_seconds / 3600 x vcpu_hour + peak_memory_gb x wall_hours x memory_gb_hour
  + artifact_gb x storage_gb_month x storage_months + gpus x wall_hours x gpu_hour.

The figures go where TFX users look for them, custom properties of each
execution in MLMD (COST_PROPERTIES), and into <pipeline_root>/runs/<run>/cost.json.
"""
import dataclasses
import json
import logging
import os
import threading
import time
from typing import Dict, List, Optional

import psutil
from absl import logging as absl_logging

from common.files import atomic_write_text
from pipeline import mlmd_queries
from pipeline.configs import CostConfig

RUNNING, FINISHED = "Component %s is running.", "Component %s is finished."
SAMPLE_SECONDS = 0.25
GB = 1024 ** 3
# The custom properties of an execution that hold its cost, by ComponentCost field.
# MLMD keeps six decimal places of a double, so money is stored in millionths
# of the currency ("micros", as billing exports do).
COST_PROPERTIES = {"cached": "cost_cached", "wall_seconds": "cost_wall_seconds",
                   "cpu_seconds": "cost_cpu_seconds", "peak_memory_mb": "cost_peak_memory_mb",
                   "artifact_bytes": "cost_artifact_bytes", "cost": "cost_micros"}
STORED_SCALE = {"cost": 1e6}
CURRENCY_PROPERTY = "cost_currency"
COST_FILE = "cost.json"


@dataclasses.dataclass
class ComponentCost:
    name: str
    cached: bool
    wall_seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    artifact_bytes: int
    cost: float


@dataclasses.dataclass
class _Measured:
    wall_seconds: float
    cpu_seconds: float
    peak_rss: int


def process_tree_cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of this process, its finished children and its live descendants.

    This process's own time comes from time.process_time, which counts in
    nanoseconds: the kernel's per-process counters tick every 10 ms, longer
    than a small component takes.
    """
    finished = os.times()
    total = time.process_time() + finished.children_user + finished.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:  # ended since listed: counted once it is reaped
            continue
        total += child_times.user + child_times.system
    return total


def process_tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and every descendant (Beam workers included)."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # a worker that ended between listing and reading
    return total


class ComponentMeter(logging.Handler):
    """Measures each component LocalDagRunner runs while it is installed (a context manager).

    It also measures itself: `overhead_seconds` is the CPU time its sampling
    thread and its log handling took, the ledger's own cost.
    """

    def __init__(self):
        super().__init__(level=logging.INFO)
        self._process = psutil.Process()
        self._lock = threading.Lock()
        self._current: Optional[tuple] = None  # (node, started, cpu at start, peak rss)
        self.measured: Dict[str, _Measured] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="cost-meter", daemon=True)
        self._sampler_cpu = 0.0
        self._handler_cpu = 0.0
        self._absl_verbosity = absl_logging.get_verbosity()

    @property
    def overhead_seconds(self) -> float:
        return self._sampler_cpu + self._handler_cpu

    def __enter__(self) -> "ComponentMeter":
        # TFX's progress lines are INFO. Set through absl's verbosity flag, not the
        # logger's level: TensorFlow sets the flag to FATAL and back while it
        # saves a model, which resets the logger to the flag's value.
        self._absl_verbosity = absl_logging.get_verbosity()
        if self._absl_verbosity < absl_logging.INFO:
            absl_logging.set_verbosity(absl_logging.INFO)
        logging.getLogger("absl").addHandler(self)
        self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("absl").removeHandler(self)
        absl_logging.set_verbosity(self._absl_verbosity)
        self._stop.set()
        self._sampler.join()
        if self._current is not None:  # the component that failed: it cost until now
            self._close(time.monotonic(), process_tree_cpu_seconds(self._process),
                        process_tree_rss(self._process))

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg not in (RUNNING, FINISHED) or not record.args:
            return
        started = time.thread_time()
        now, cpu = time.monotonic(), process_tree_cpu_seconds(self._process)
        rss = process_tree_rss(self._process)
        with self._lock:
            if record.msg == RUNNING:
                self._current = (record.args[0], now, cpu, rss)
            elif self._current is not None:
                self._close(now, cpu, rss)
        self._handler_cpu += time.thread_time() - started

    def _close(self, now: float, cpu: float, rss: int) -> None:
        node, began, cpu_began, peak = self._current
        self.measured[node] = _Measured(now - began, cpu - cpu_began, max(peak, rss))
        self._current = None

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            started = time.thread_time()
            rss = process_tree_rss(self._process)
            with self._lock:
                if self._current is not None and rss > self._current[3]:
                    self._current = self._current[:3] + (rss,)
            self._sampler_cpu += time.thread_time() - started


def price(cost: CostConfig, measured: _Measured, artifact_bytes: int) -> float:
    hours = measured.wall_seconds / 3600
    return (measured.cpu_seconds / 3600 * cost.vcpu_hour
            + measured.peak_rss / GB * hours * cost.memory_gb_hour
            + artifact_bytes / GB * cost.storage_gb_month * cost.storage_months
            + cost.gpus * hours * cost.gpu_hour)


def directory_bytes(uri: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(uri) for name in names)


def _execution_cost(store, execution, node: str, meter: ComponentMeter,
                    cost: CostConfig) -> ComponentCost:
    measured = meter.measured.get(node)
    cached = mlmd_queries.state_name(execution) == "cached"
    if cached or measured is None:  # a cached execution reused what an earlier one paid for
        return ComponentCost(node, cached, 0.0, 0.0, 0.0, 0, 0.0)
    written = sum(directory_bytes(artifact.uri)
                  for artifacts in mlmd_queries.output_artifacts(store, execution.id).values()
                  for artifact in artifacts)
    return ComponentCost(node, False, measured.wall_seconds, measured.cpu_seconds,
                         measured.peak_rss / 2 ** 20, written, price(cost, measured, written))


def record_run(metadata_path: str, pipeline_root: str, after_execution: int,
               meter: ComponentMeter, cost: CostConfig) -> Optional[dict]:
    """Prices the executions with ids above `after_execution` (one run), stores and returns it.

    Each execution gets COST_PROPERTIES in MLMD; the run's ledger is written to
    <pipeline_root>/runs/<run id>/cost.json. None when the run recorded nothing.
    """
    started = time.perf_counter()
    store = mlmd_queries.open_store(metadata_path, writable=True)
    executions = [e for e in store.get_executions() if e.id > after_execution]
    if not executions:
        return None
    components: List[ComponentCost] = []
    for execution in sorted(executions, key=lambda e: e.id):
        node = mlmd_queries.node_of(store, execution.id) or "?"
        component = _execution_cost(store, execution, node, meter, cost)
        for field, key in COST_PROPERTIES.items():
            value = getattr(component, field)
            _set_property(execution, key, value * STORED_SCALE[field]
                          if field in STORED_SCALE else value)
        execution.custom_properties[CURRENCY_PROPERTY].string_value = cost.currency
        components.append(component)
    store.put_executions(executions)
    ledger = {"run_id": mlmd_queries.run_id_of(store, executions[-1].id),
              "currency": cost.currency, "price_source": cost.source,
              "prices": dataclasses.asdict(cost),
              "components": [dataclasses.asdict(c) for c in components],
              "total_cost": sum(c.cost for c in components),
              "total_cpu_seconds": sum(c.cpu_seconds for c in components),
              "total_wall_seconds": sum(c.wall_seconds for c in components),
              # The meter's own CPU and the time this record took: the ledger's cost.
              "ledger_overhead_seconds": meter.overhead_seconds + time.perf_counter() - started}
    path = os.path.join(pipeline_root, "runs", ledger["run_id"], COST_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, json.dumps(ledger, indent=2) + "\n")
    return ledger


def _set_property(execution, key: str, value) -> None:
    target = execution.custom_properties[key]
    if isinstance(value, bool) or isinstance(value, int):
        target.int_value = int(value)
    else:
        target.double_value = float(value)


def currency_of(execution) -> str:
    return execution.custom_properties[CURRENCY_PROPERTY].string_value \
        if CURRENCY_PROPERTY in execution.custom_properties else ""


def stored_cost(execution, node: str) -> Optional[ComponentCost]:
    """The ComponentCost stored on an MLMD execution of `node`, or None when it has none."""
    properties = execution.custom_properties
    if COST_PROPERTIES["cost"] not in properties:
        return None
    values = {}
    for field, key in COST_PROPERTIES.items():
        value = properties[key]
        if value.HasField("double_value"):
            values[field] = value.double_value / STORED_SCALE.get(field, 1)
        else:
            values[field] = value.int_value
    values["cached"] = bool(values["cached"])
    return ComponentCost(name=node, **values)
