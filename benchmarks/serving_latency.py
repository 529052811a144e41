"""Latency and throughput of `riskpipe serve`, against its floors, in one run.

Side by side, on loopback with TLS (certificates from `riskpipe certs`):
  in-process   the SavedModel's serving_default signature called directly
  grpc-noop    a do-nothing PredictionService on the same stubs, on Python gRPC's
               thread-pool server and on its asyncio server (which riskpipe serve
               uses): the faster of the two is Python gRPC's floor here
  riskpipe     `riskpipe serve`, without --enable_batching, and with it in two
               configurations, each sized to one of the loads (BATCHING)
For each: p50/p99 for one transaction per request at concurrency 1, and
throughput (transactions/s) and p99 with 8 concurrent clients sending 1 and 64
transactions per request. Servers run in their own processes; the clients run
here. The last column is the server process's CPU time per transaction under
the 8x1 load (for in-process, this process's), which is what bounds
throughput when client and server share the machine's cores.

    python benchmarks/serving_latency.py [--model_dir VERSION_DIR] [--requests 2000]

Without --model_dir it builds the tiny model of tests/serving/model_fixtures.py.
Targets: gRPC p50 <= 4x the in-process call (one transaction); with batching,
single-transaction throughput >= half the faster do-nothing servicer's under
the same load, with p99 under 10 ms.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from common import runtime  # noqa: E402  # before TensorFlow is imported

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)

CONCURRENCY = 8
BIG_BATCH = 64
NOOP_KINDS = {"sync": "grpc-noop thread pool", "aio": "grpc-noop asyncio"}


def batching_parameters(batch_rows: int, request_rows: int) -> str:
    """BatchingParameters closing a batch at `batch_rows` rows or after the 2 ms window
    of kubeflow/config/batching.config; larger requests (up to `request_rows`) are split.

    One batch thread: it is the event loop itself, and on two cores shared with
    the clients more batch threads only add hand-offs (measured: 2 threads
    10-20% fewer transactions/s than 1)."""
    text = (f"max_batch_size {{ value: {request_rows} }}\n"
            "batch_timeout_micros { value: 2000 }\n"
            "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 100 }\n")
    if batch_rows < request_rows:
        text += ("enable_large_batch_splitting { value: true }\n"
                 f"max_execution_batch_size {{ value: {batch_rows} }}\n")
    return text


# Batching sized to each load, as TF Serving's guide has it tuned: a batch of 8
# rows is full when each of the 8 single-transaction clients has a request in,
# and one of 512 when each of the 8 clients sending 64 has.
SINGLE_BATCHED = f"riskpipe, batches <= {CONCURRENCY}"
BATCHING = {
    SINGLE_BATCHED: batching_parameters(CONCURRENCY, BIG_BATCH),
    f"riskpipe, batches <= {CONCURRENCY * BIG_BATCH}": batching_parameters(
        CONCURRENCY * BIG_BATCH, CONCURRENCY * BIG_BATCH),
}


def percentiles(latencies):
    import numpy as np
    values = np.asarray(latencies) * 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


# ---------------------------------------------------------------- the do-nothing server

def run_noop_server(port_file: str, ssl_config: str, kind: str) -> None:
    """A PredictionService answering every Predict with an empty response, on Python
    gRPC's thread-pool server (kind "sync") or its asyncio server ("aio")."""
    import asyncio
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from serving import tls

    credentials = tls.server_credentials(tls.load_ssl_config(ssl_config))

    def serve(server, predict) -> int:
        servicer = type("Noop", (prediction_service_pb2_grpc.PredictionServiceServicer,),
                        {"Predict": predict})()
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        with open(port_file + ".partial", "w") as handle:
            handle.write(str(port))
        return port

    if kind == "sync":
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
        serve(server, lambda self, request, context: predict_pb2.PredictResponse())
        server.start()
        os.replace(port_file + ".partial", port_file)
        server.wait_for_termination(timeout=3600)
        return

    async def predict(self, request, context):
        return predict_pb2.PredictResponse()

    async def main():
        server = grpc.aio.server()
        serve(server, predict)
        await server.start()
        os.replace(port_file + ".partial", port_file)
        await server.wait_for_termination(timeout=3600)

    asyncio.run(main())


# ---------------------------------------------------------------- clients

class Load:
    """Runs a request function at concurrency 1 and CONCURRENCY; bounded by count."""

    def __init__(self, requests: int):
        self.requests = requests
        self.per_client = max(1, requests // CONCURRENCY)

    def sequential(self, call):
        for _ in range(min(50, self.requests)):
            call()
        latencies = []
        for _ in range(self.requests):
            started = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - started)
        return percentiles(latencies)

    def cpu_ms_per_request(self, pid: int, run):
        """Runs `run()`; returns its result and the CPU ms process `pid` spent per request."""
        import psutil
        process = psutil.Process(pid)
        before = sum(process.cpu_times()[:2])
        result = run()
        requests = self.per_client * CONCURRENCY
        return result, (sum(process.cpu_times()[:2]) - before) * 1e3 / requests

    def concurrent(self, call, transactions: int):
        latencies, lock = [], threading.Lock()
        barrier = threading.Barrier(CONCURRENCY + 1)

        def client(index):
            local = []
            call(index)  # connect and warm
            barrier.wait()
            for _ in range(self.per_client):
                started = time.perf_counter()
                call(index)
                local.append(time.perf_counter() - started)
            with lock:
                latencies.extend(local)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        _, p99 = percentiles(latencies)
        return len(latencies) * transactions / elapsed, p99


def grpc_row(address: str, server_pid: int, client_tls, examples, load: Load,
             expect_outputs: bool):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from common.serving_contract import EXAMPLES_INPUT
    from serving import tls

    def request(count):
        message = predict_pb2.PredictRequest()
        message.model_spec.name = "fraud"
        message.inputs[EXAMPLES_INPUT].CopyFrom(
            tf.make_tensor_proto((examples * count)[:count], dtype=tf.string))
        return message

    single, big = request(1), request(BIG_BATCH)
    stubs = [prediction_service_pb2_grpc.PredictionServiceStub(
        tls.channel(address, client_tls)) for _ in range(CONCURRENCY)]

    def call(stub, message):
        response = stub.Predict(message, timeout=30)
        if expect_outputs and not response.outputs:
            raise RuntimeError("empty response")

    p50, p99 = load.sequential(lambda: call(stubs[0], single))
    (tps1, p99_1), cpu = load.cpu_ms_per_request(
        server_pid, lambda: load.concurrent(lambda i: call(stubs[i], single), 1))
    tps64, p99_64 = load.concurrent(lambda i: call(stubs[i], big), BIG_BATCH)
    return p50, p99, tps1, p99_1, tps64, p99_64, cpu


def in_process_row(model_dir: str, examples, load: Load):
    import tensorflow as tf
    from common.serving_contract import SERVING_DEFAULT
    function = tf.saved_model.load(model_dir).signatures[SERVING_DEFAULT]
    single = tf.constant(examples[:1])
    big = tf.constant((examples * BIG_BATCH)[:BIG_BATCH])
    p50, p99 = load.sequential(lambda: function(examples=single))
    (tps1, p99_1), cpu = load.cpu_ms_per_request(
        os.getpid(), lambda: load.concurrent(lambda i: function(examples=single), 1))
    tps64, p99_64 = load.concurrent(lambda i: function(examples=big), BIG_BATCH)
    return p50, p99, tps1, p99_1, tps64, p99_64, cpu


# ---------------------------------------------------------------- servers

def wait_for_port_file(path: str, process, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def start_riskpipe(base_path: str, ssl_config: str, batching_file: str):
    command = [sys.executable, "-m", "cli.main", "serve", "--port=0",
               "--bind_address=127.0.0.1", "--model_name=fraud", f"--model_base_path={base_path}",
               f"--ssl_config_file={ssl_config}", "--file_system_poll_wait_seconds=60"]
    if batching_file:
        command += ["--enable_batching=true", f"--batching_parameters_file={batching_file}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    port = int(process.stdout.readline().split("gRPC on port ")[1].split(",")[0])
    return process, port


def wait_serving(address: str, client_tls) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from serving import tls
    stub = health_pb2_grpc.HealthStub(tls.channel(address, client_tls))
    for _ in range(1200):
        if stub.Check(health_pb2.HealthCheckRequest(), timeout=5,
                      wait_for_ready=True).status == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.1)
    raise RuntimeError("model server never reported SERVING")


def stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- main

def model_and_examples(model_dir: str, workdir: str):
    from common.serving_contract import EXAMPLES_INPUT, read_warmup_requests
    if not model_dir:
        sys.path.insert(0, os.path.join(ROOT, "tests", "serving"))
        import model_fixtures
        model_dir = model_fixtures.export_model(os.path.join(workdir, "export"))
    examples = []
    for log in read_warmup_requests(model_dir):
        examples += list(log.predict_log.request.inputs[EXAMPLES_INPUT].string_val)
    if not examples:
        raise SystemExit(f"{model_dir}: no Predict warmup request to take examples from")
    return model_dir, examples


def print_table(rows) -> None:
    header = (f"{'system':<26}{'c1 p50 ms':>10}{'c1 p99 ms':>10}"
              f"{'c8x1 tx/s':>11}{'c8x1 p99':>10}{'c8x64 tx/s':>12}{'c8x64 p99':>11}"
              f"{'c8x1 CPU ms/tx':>16}")
    print(header)
    print("-" * len(header))
    for name, (p50, p99, tps1, p99_1, tps64, p99_64, cpu) in rows:
        print(f"{name:<26}{p50:>10.3f}{p99:>10.3f}{tps1:>11.0f}{p99_1:>10.2f}"
              f"{tps64:>12.0f}{p99_64:>11.2f}{cpu:>16.3f}")


def check_targets(rows: dict) -> None:
    in_process, plain, batched = rows["in-process"], rows["riskpipe"], rows[SINGLE_BATCHED]
    noop = max((rows[name] for name in NOOP_KINDS.values()), key=lambda row: row[2])
    ratio = plain[0] / in_process[0]
    print()
    print(f"target: riskpipe p50 <= 4x in-process:  {plain[0]:.3f} ms / {in_process[0]:.3f} ms"
          f" = {ratio:.1f}x  {'MET' if ratio <= 4 else 'MISSED'}")
    share = batched[2] / noop[2]
    print(f"target: batched c8x1 throughput >= 0.5x the faster noop: "
          f"{batched[2]:.0f} / {noop[2]:.0f} tx/s"
          f" = {share:.2f}  {'MET' if share >= 0.5 else 'MISSED'}")
    print(f"target: batched c8x1 p99 < 10 ms: {batched[3]:.2f} ms  "
          f"{'MET' if batched[3] < 10 else 'MISSED'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default="", help="a SavedModel version directory")
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per measurement (default: 2000)")
    parser.add_argument("--run-noop-server", nargs=3, metavar=("PORT_FILE", "SSL_CONFIG", "KIND"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_noop_server:
        run_noop_server(*args.run_noop_server)
        return 0

    from serving import certs, tls
    workdir = tempfile.mkdtemp(prefix="serving-latency-")
    model_dir, examples = model_and_examples(args.model_dir, workdir)
    files = certs.make_certificates(os.path.join(workdir, "certs"))
    client_tls = tls.client_tls_from_files(files.ca_cert)
    base_path = os.path.join(workdir, "models", "fraud")
    os.makedirs(base_path)
    os.symlink(os.path.abspath(model_dir), os.path.join(base_path, "1"))
    load = Load(args.requests)
    rows = {}
    print(f"model {model_dir}; {args.requests} requests per measurement; TLS on loopback",
          flush=True)
    rows["in-process"] = in_process_row(model_dir, examples, load)

    for kind, name in NOOP_KINDS.items():
        port_file = os.path.join(workdir, f"noop-{kind}.port")
        noop = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--run-noop-server",
                                 port_file, files.server_ssl_config, kind], cwd=ROOT)
        try:
            address = f"localhost:{wait_for_port_file(port_file, noop)}"
            rows[name] = grpc_row(address, noop.pid, client_tls, examples, load, False)
        finally:
            stop(noop)

    servers = {"riskpipe": ""}
    for name, parameters in BATCHING.items():
        servers[name] = os.path.join(workdir, f"batching-{len(servers)}.config")
        with open(servers[name], "w") as handle:
            handle.write(parameters)
    for name, batching_file in servers.items():
        process, port = start_riskpipe(base_path, files.server_ssl_config, batching_file)
        try:
            address = f"localhost:{port}"
            wait_serving(address, client_tls)
            rows[name] = grpc_row(address, process.pid, client_tls, examples, load, True)
        finally:
            stop(process)
    print()
    print_table(rows.items())
    check_targets(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
