"""Latency and throughput of `riskpipe serve`, against its floors, in one run.

Side by side, on loopback with TLS (certificates from `riskpipe certs`):
  in-process   the SavedModel's serving_default signature called directly, as
               a TF2 concrete function and as a Session callable (the two model
               call paths of serving/servable.py)
  grpc-noop    a do-nothing PredictionService on the same stubs, on Python gRPC's
               thread-pool server and on its asyncio server (which riskpipe serve
               uses): the faster of the two is Python gRPC's floor here
  riskpipe     `riskpipe serve`, without --enable_batching, and with it in two
               configurations, each sized to one of the loads (BATCHING); each
               once on the session call path (riskpipe serve's default, "after")
               and once with --model_call_path=tf2_function (the
               path before it, "before")
For each: p50/p99 for one transaction per request at concurrency 1, and
throughput (transactions/s) and p99 with 8 concurrent clients sending 1 and 64
transactions per request (and the p50 of 8 sending 1). Servers run in their own processes; the clients run
here. The last column is the server process's CPU time per transaction under
the 8x1 load (for in-process, this process's), which is what bounds
throughput when client and server share the machine's cores.

Then where one transaction's time goes (concurrency 1, no batching), on each
call path: timers around each stage inside the server (serving/stage_timing.py,
enabled only in that server run) beside the client's round trip; what the
server stages do not account for is gRPC (both sides), TLS and loopback.

    python benchmarks/serving_latency.py [--model_dir VERSION_DIR | --tiny_model]
                                         [--requests 2000]

Without --model_dir it trains a small pipeline (`riskpipe generate` 20 k
transactions + `riskpipe run`, about a minute) and serves its pushed model;
--tiny_model serves the tiny model of tests/serving/model_fixtures.py instead.
Targets (the session path): riskpipe p50 for one transaction <= 1.6x the asyncio
do-nothing servicer's; with batching, single-transaction throughput from 8
clients >= 0.8x the faster do-nothing servicer's, its p99 under 10 ms, and the
server's CPU per transaction under that load <= 0.5 ms.
"""
import argparse
import concurrent.futures
import functools
import json
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
runtime.use_eigen_kernels()  # as `riskpipe serve` runs, for the in-process rows too
runtime.quiet_startup(verbose=False)

CONCURRENCY = 8
BIG_BATCH = 64
NOOP_KINDS = {"sync": "grpc-noop thread pool", "aio": "grpc-noop asyncio"}
# serving/servable.py's model call paths: riskpipe serve's default, and the one before it.
AFTER, BEFORE = "session", "tf2_function"
TARGET_P50_RATIO = 1.6
TARGET_THROUGHPUT_SHARE = 0.8
TARGET_P99_MS = 10.0
TARGET_CPU_MS = 0.5


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
        p50, p99 = percentiles(latencies)
        return len(latencies) * transactions / elapsed, p50, p99


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
    (tps1, p50_1, p99_1), cpu = load.cpu_ms_per_request(
        server_pid, lambda: load.concurrent(lambda i: call(stubs[i], single), 1))
    tps64, _, p99_64 = load.concurrent(lambda i: call(stubs[i], big), BIG_BATCH)
    return p50, p99, tps1, p99_1, tps64, p99_64, cpu, p50_1


def in_process_row(model_dir: str, examples, load: Load, call_path: str):
    """serving_default called in this process through serving/servable.py's call path."""
    import numpy as np
    from common.serving_contract import EXAMPLES_INPUT, OUTPUT_KEY, SERVING_DEFAULT
    from serving.servable import load_servable
    servable = load_servable("fraud", 1, model_dir, model_call_path=call_path)
    if servable.call_path != call_path:
        raise RuntimeError(f"{model_dir} fell back to {servable.call_path}: "
                           f"{servable.fallback_reason}")
    single = {EXAMPLES_INPUT: np.array(examples[:1], dtype=object)}
    big = {EXAMPLES_INPUT: np.array((examples * BIG_BATCH)[:BIG_BATCH], dtype=object)}

    def call(inputs):
        servable.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY])

    p50, p99 = load.sequential(lambda: call(single))
    (tps1, p50_1, p99_1), cpu = load.cpu_ms_per_request(
        os.getpid(), lambda: load.concurrent(lambda i: call(single), 1))
    tps64, _, p99_64 = load.concurrent(lambda i: call(big), BIG_BATCH)
    return p50, p99, tps1, p99_1, tps64, p99_64, cpu, p50_1


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


def run_riskpipe_server(stage_file: str, serve_args) -> int:
    """`riskpipe serve SERVE_ARGS` in this process, with stage timers written to
    stage_file on exit."""
    from cli import main as cli_main
    from serving import server as server_module
    from serving.stage_timing import StageTimes

    stage_times = StageTimes()
    server_module.ModelServer = functools.partial(server_module.ModelServer,
                                                  stage_times=stage_times)
    code = cli_main.main(["serve", *serve_args])
    stage_times.write_json(stage_file)
    return code


def start_riskpipe(base_path: str, ssl_config: str, batching_file: str,
                   call_path: str = AFTER, stage_file: str = ""):
    """`riskpipe serve --model_call_path CALL_PATH`; through run_riskpipe_server
    for stage timers."""
    serve_args = ["--port=0", "--bind_address=127.0.0.1", "--model_name=fraud",
                  f"--model_base_path={base_path}", f"--ssl_config_file={ssl_config}",
                  "--file_system_poll_wait_seconds=60", f"--model_call_path={call_path}"]
    if batching_file:
        serve_args += ["--enable_batching=true", f"--batching_parameters_file={batching_file}"]
    if not stage_file:
        command = [sys.executable, "-m", "cli.main", "serve", *serve_args]
    else:
        command = [sys.executable, os.path.abspath(__file__), "--run-riskpipe-server",
                   stage_file, "--", *serve_args]
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


# ---------------------------------------------------------------- where the time goes

BREAKDOWN = (
    ("parse", "server: parse the request message"),
    ("prepare", "server: resolve, check, TensorProto -> array"),
    ("model", "server: the model call"),
    ("respond", "server: outputs -> response message"),
    ("dataplane", "server: metrics and telemetry"),
    ("serialize", "server: serialize the response"),
)


def stage_breakdown(base_path: str, ssl_config: str, client_tls, examples, requests: int,
                    workdir: str, call_path: str) -> dict:
    """Mean microseconds per stage of one-transaction requests at concurrency 1 (no
    batching), from the server's stage timers, and the client's mean round trip."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from common.serving_contract import EXAMPLES_INPUT
    from serving import tls

    stage_file = os.path.join(workdir, f"stages-{call_path}.json")
    process, port = start_riskpipe(base_path, ssl_config, "", call_path, stage_file)
    warm = min(50, requests)
    try:
        address = f"localhost:{port}"
        wait_serving(address, client_tls)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(tls.channel(address, client_tls))
        message = predict_pb2.PredictRequest()
        message.model_spec.name = "fraud"
        message.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(examples[:1],
                                                                     dtype=tf.string))
        round_trips = []
        for index in range(warm + requests):
            started = time.perf_counter()
            stub.Predict(message, timeout=30)
            if index >= warm:
                round_trips.append(time.perf_counter() - started)
    finally:
        stop(process)
    with open(stage_file) as handle:
        samples = {stage: np.asarray(values[-requests:]) * 1e6
                   for stage, values in json.load(handle).items()}
    means = {stage: float(values.mean()) for stage, values in samples.items()}
    means["dataplane"] = means["handler"] - means["prepare"] - means["model"] - means["respond"]
    means["client"] = float(np.mean(round_trips)) * 1e6
    return means


def print_breakdown(breakdowns: dict, noop_mean_us: float) -> None:
    paths = list(breakdowns)
    print()
    print("where one transaction's time goes: Predict, 1 tf.Example, concurrency 1, no batching;"
          " mean us per request")
    header = f"{'stage':<48}" + "".join(f"{path:>14}" for path in paths)
    print(header)
    print("-" * len(header))
    for stage, label in BREAKDOWN:
        print(f"{label:<48}" + "".join(f"{breakdowns[path][stage]:>14.0f}" for path in paths))
    server = {path: sum(breakdowns[path][stage] for stage, _ in BREAKDOWN) for path in paths}
    print(f"{'server stages, total':<48}" + "".join(f"{server[path]:>14.0f}" for path in paths))
    print(f"{'gRPC (client and server), TLS, loopback: rest':<48}"
          + "".join(f"{breakdowns[path]['client'] - server[path]:>14.0f}" for path in paths))
    print(f"{'client round trip':<48}"
          + "".join(f"{breakdowns[path]['client']:>14.0f}" for path in paths))
    print(f"(the asyncio do-nothing servicer's round trip, same client: {noop_mean_us:.0f} us)")


# ---------------------------------------------------------------- main

def train_pushed_model(workdir: str) -> str:
    """A small pipeline run (default trainer, 20 k simulated transactions); its pushed version."""
    data, serving_root = os.path.join(workdir, "data"), os.path.join(workdir, "serving")
    print("training a small pipeline for a pushed fraud model (about a minute)...", flush=True)
    for command in (["generate", "--transactions", "20000", "--days", "20", "--fraud-rate",
                     "0.03", "--seed", "1", "--out", data],
                    ["run", "--data", data, "--pipeline-root", os.path.join(workdir, "pipeline"),
                     "--serving-root", serving_root]):
        subprocess.run([sys.executable, "-m", "cli.main", *command], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    base = os.path.join(serving_root, "fraud")
    return os.path.join(base, max(os.listdir(base), key=int))


def model_and_examples(model_dir: str, tiny: bool, workdir: str):
    from common.serving_contract import EXAMPLES_INPUT, read_warmup_requests
    if tiny:
        sys.path.insert(0, os.path.join(ROOT, "tests", "serving"))
        import model_fixtures
        model_dir = model_fixtures.export_model(os.path.join(workdir, "export"))
    elif not model_dir:
        model_dir = train_pushed_model(workdir)
    examples = []
    for log in read_warmup_requests(model_dir):
        examples += list(log.predict_log.request.inputs[EXAMPLES_INPUT].string_val)
    if not examples:
        raise SystemExit(f"{model_dir}: no Predict warmup request to take examples from")
    return model_dir, examples


def print_table(rows) -> None:
    header = (f"{'system':<42}{'c1 p50 ms':>10}{'c1 p99 ms':>10}"
              f"{'c8x1 tx/s':>11}{'c8x1 p50':>10}{'c8x1 p99':>10}{'c8x64 tx/s':>12}"
              f"{'c8x64 p99':>11}{'c8x1 CPU ms/tx':>16}")
    print(header)
    print("-" * len(header))
    for name, (p50, p99, tps1, p99_1, tps64, p99_64, cpu, p50_1) in rows:
        print(f"{name:<42}{p50:>10.3f}{p99:>10.3f}{tps1:>11.0f}{p50_1:>10.2f}{p99_1:>10.2f}"
              f"{tps64:>12.0f}{p99_64:>11.2f}{cpu:>16.3f}")


def riskpipe_name(config: str, call_path: str) -> str:
    return f"{config} [{call_path}]"


def print_before_after(rows: dict, configs) -> None:
    print()
    print(f"before ({BEFORE}) -> after ({AFTER}), riskpipe serve, same run")
    header = (f"{'configuration':<26}{'c1 p50 ms':>18}{'c8x1 tx/s':>16}{'c8x1 p99 ms':>16}"
              f"{'c8x64 tx/s':>16}{'c8x1 CPU ms/tx':>18}")
    print(header)
    print("-" * len(header))
    for config in configs:
        before, after = rows[riskpipe_name(config, BEFORE)], rows[riskpipe_name(config, AFTER)]
        cells = [(0, ".3f"), (2, ".0f"), (3, ".2f"), (4, ".0f"), (6, ".3f")]
        text = "".join(f"{format(before[i], f)} -> {format(after[i], f)}".rjust(18 if n in (0, 4)
                                                                                else 16)
                       for n, (i, f) in enumerate(cells))
        print(f"{config:<26}{text}")


def check_targets(rows: dict, call_path: str) -> bool:
    plain = rows[riskpipe_name("riskpipe", call_path)]
    batched = rows[riskpipe_name(SINGLE_BATCHED, call_path)]
    aio = rows[NOOP_KINDS["aio"]]
    noop = max((rows[name] for name in NOOP_KINDS.values()), key=lambda row: row[2])
    ratio, share = plain[0] / aio[0], batched[2] / noop[2]
    results = [
        (f"riskpipe c1 p50 <= {TARGET_P50_RATIO}x the asyncio noop's: {plain[0]:.3f} / "
         f"{aio[0]:.3f} ms = {ratio:.2f}x", ratio <= TARGET_P50_RATIO),
        (f"batched c8x1 throughput >= {TARGET_THROUGHPUT_SHARE}x the faster noop's: "
         f"{batched[2]:.0f} / {noop[2]:.0f} tx/s = {share:.2f}x", share >= TARGET_THROUGHPUT_SHARE),
        (f"batched c8x1 p99 < {TARGET_P99_MS:.0f} ms: {batched[3]:.2f} ms",
         batched[3] < TARGET_P99_MS),
        (f"batched c8x1 server CPU <= {TARGET_CPU_MS} ms/tx: {batched[6]:.3f} ms",
         batched[6] <= TARGET_CPU_MS),
    ]
    print()
    print(f"targets, {call_path} path{' (riskpipe serve default)' if call_path == AFTER else ''}:")
    for text, met in results:
        print(f"  {text}  {'MET' if met else 'MISSED'}")
    return all(met for _, met in results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model_dir", default="", help="a SavedModel version directory "
                        "(default: train a small pipeline and serve its pushed model)")
    source.add_argument("--tiny_model", action="store_true",
                        help="serve tests/serving/model_fixtures.py's tiny model instead")
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per measurement (default: 2000)")
    parser.add_argument("--run-noop-server", nargs=3, metavar=("PORT_FILE", "SSL_CONFIG", "KIND"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--run-riskpipe-server", metavar="STAGE_FILE", help=argparse.SUPPRESS)
    parser.add_argument("serve_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_noop_server:
        run_noop_server(*args.run_noop_server)
        return 0
    if args.run_riskpipe_server:
        return run_riskpipe_server(args.run_riskpipe_server, args.serve_args)

    from serving import certs, tls
    workdir = tempfile.mkdtemp(prefix="serving-latency-")
    model_dir, examples = model_and_examples(args.model_dir, args.tiny_model, workdir)
    files = certs.make_certificates(os.path.join(workdir, "certs"))
    client_tls = tls.client_tls_from_files(files.ca_cert)
    base_path = os.path.join(workdir, "models", "fraud")
    os.makedirs(base_path)
    os.symlink(os.path.abspath(model_dir), os.path.join(base_path, "1"))
    load = Load(args.requests)
    rows = {}
    print(f"model {model_dir}; {args.requests} requests per measurement; TLS on loopback",
          flush=True)
    for call_path in (BEFORE, AFTER):
        rows[f"in-process [{call_path}]"] = in_process_row(model_dir, examples, load, call_path)

    noop_means = {}
    for kind, name in NOOP_KINDS.items():
        port_file = os.path.join(workdir, f"noop-{kind}.port")
        noop = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--run-noop-server",
                                 port_file, files.server_ssl_config, kind], cwd=ROOT)
        try:
            address = f"localhost:{wait_for_port_file(port_file, noop)}"
            rows[name] = grpc_row(address, noop.pid, client_tls, examples, load, False)
            noop_means[kind] = noop_mean_us(address, client_tls, examples, load.requests)
        finally:
            stop(noop)

    servers = {"riskpipe": ""}
    for name, parameters in BATCHING.items():
        servers[name] = os.path.join(workdir, f"batching-{len(servers)}.config")
        with open(servers[name], "w") as handle:
            handle.write(parameters)
    for name, batching_file in servers.items():
        for call_path in (BEFORE, AFTER):
            process, port = start_riskpipe(base_path, files.server_ssl_config, batching_file,
                                           call_path)
            try:
                address = f"localhost:{port}"
                wait_serving(address, client_tls)
                rows[riskpipe_name(name, call_path)] = grpc_row(
                    address, process.pid, client_tls, examples, load, True)
            finally:
                stop(process)
    breakdowns = {call_path: stage_breakdown(base_path, files.server_ssl_config, client_tls,
                                             examples, args.requests, workdir, call_path)
                  for call_path in (BEFORE, AFTER)}
    print()
    print_table(rows.items())
    print_before_after(rows, servers)
    print_breakdown(breakdowns, noop_means["aio"])
    check_targets(rows, BEFORE)
    met = check_targets(rows, AFTER)
    return 0 if met else 1


def noop_mean_us(address: str, client_tls, examples, requests: int) -> float:
    """The do-nothing servicer's mean round trip for the breakdown's request."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from common.serving_contract import EXAMPLES_INPUT
    from serving import tls
    stub = prediction_service_pb2_grpc.PredictionServiceStub(tls.channel(address, client_tls))
    message = predict_pb2.PredictRequest()
    message.model_spec.name = "fraud"
    message.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(examples[:1], dtype=tf.string))
    for _ in range(50):
        stub.Predict(message, timeout=30)
    started = time.perf_counter()
    for _ in range(requests):
        stub.Predict(message, timeout=30)
    return (time.perf_counter() - started) / requests * 1e6


if __name__ == "__main__":
    sys.exit(main())
