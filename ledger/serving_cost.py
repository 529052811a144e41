"""What a model version costs to serve: server CPU per transaction, measured, and its price.

The version is served by `riskpipe serve` in its own process on loopback, with
the fleet's batching config (kubeflow/config/batching.config), and a fixed
sample of eval transactions is replayed through it, one transaction per
Predict request on serving_default: once from one client (concurrency 1) and
once from eight at the same time (concurrency 8, the load batching is for).
The server process's CPU time over each replay, divided by the transactions,
is the version's CPU milliseconds per transaction; priced at the vCPU-hour
rate it is the cost per million transactions (memory a server holds is the
fleet's size, not a per-transaction cost).
"""
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, Sequence

import psutil

from common.serving_contract import EXAMPLES_INPUT, MAX_MESSAGE_BYTES, SERVING_DEFAULT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLEET_BATCHING_CONFIG = os.path.join(REPO, "kubeflow", "config", "batching.config")
CONCURRENCY = 8
WARMUP_REQUESTS = 100
START_TIMEOUT_SECONDS = 120


def cost_per_million(cpu_ms_per_txn: float, vcpu_hour: float) -> float:
    return cpu_ms_per_txn / 1000 / 3600 * vcpu_hour * 1e6


@contextlib.contextmanager
def served(version_dir: str, model_name: str, batching_config: str) -> Iterator[tuple]:
    """(server process, gRPC address) of `riskpipe serve` serving the one version."""
    with tempfile.TemporaryDirectory(prefix="riskpipe-serving-cost-") as base:
        os.symlink(os.path.abspath(version_dir), os.path.join(base, os.path.basename(version_dir)))
        command = [sys.executable, "-m", "cli.main", "serve", "--port=0",
                   "--bind_address=127.0.0.1", f"--model_name={model_name}",
                   f"--model_base_path={base}", "--file_system_poll_wait_seconds=0",
                   "--enable_batching=true", f"--batching_parameters_file={batching_config}"]
        log_path = os.path.join(base, "serve.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log,
                                       text=True)
        try:
            first_line = process.stdout.readline()  # "riskpipe serve: gRPC on port N"
            if not first_line.startswith("riskpipe serve: gRPC on port"):
                with open(log_path) as log:
                    raise RuntimeError(f"riskpipe serve did not start: {log.read()[-2000:]}")
            yield process, f"127.0.0.1:{int(first_line.split()[-1].rstrip(','))}"
        finally:
            process.terminate()
            process.wait(timeout=60)


def _predict_requests(model_name: str, examples: Sequence[bytes]) -> list:
    # pylint: disable=import-outside-toplevel
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    requests = []
    for example in examples:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = SERVING_DEFAULT
        tensor = request.inputs[EXAMPLES_INPUT]
        tensor.dtype = types_pb2.DT_STRING
        tensor.tensor_shape.dim.add(size=1)
        tensor.string_val.append(example)
        requests.append(request)
    return requests


def _wait_until_available(stub, request, deadline: float) -> None:
    import grpc  # pylint: disable=import-outside-toplevel

    while True:
        try:
            stub.Predict(request, timeout=5)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _replay_cpu_ms(process: psutil.Process, stubs: list, requests: list) -> float:
    """Server CPU milliseconds per request while the stubs send `requests` between them."""
    def send(index: int) -> None:
        stub = stubs[index]
        for request in requests[index::len(stubs)]:
            stub.Predict(request, timeout=30)

    before = sum(process.cpu_times()[:2])
    with concurrent.futures.ThreadPoolExecutor(len(stubs)) as pool:
        list(pool.map(send, range(len(stubs))))
    return (sum(process.cpu_times()[:2]) - before) * 1000 / len(requests)


def measure(version_dir: str, model_name: str, examples: Sequence[bytes],
            batching_config: str = FLEET_BATCHING_CONFIG) -> Dict[str, float]:
    """{'cpu_ms_per_txn_c1', 'cpu_ms_per_txn_c8'} of serving the version the examples."""
    # pylint: disable=import-outside-toplevel
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    requests = _predict_requests(model_name, examples)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with served(version_dir, model_name, batching_config) as (server, address):
        channels = [grpc.insecure_channel(address, options=options) for _ in range(CONCURRENCY)]
        stubs = [prediction_service_pb2_grpc.PredictionServiceStub(c) for c in channels]
        try:
            _wait_until_available(stubs[0], requests[0],
                                  time.monotonic() + START_TIMEOUT_SECONDS)
            process = psutil.Process(server.pid)
            _replay_cpu_ms(process, stubs, (requests * WARMUP_REQUESTS)[:WARMUP_REQUESTS])
            return {"cpu_ms_per_txn_c1": _replay_cpu_ms(process, stubs[:1], requests),
                    "cpu_ms_per_txn_c8": _replay_cpu_ms(process, stubs, requests)}
        finally:
            for channel in channels:
                channel.close()
