"""Risk engine end to end versus the bare gRPC call, on the same server in the same run.

    python benchmarks/risk_engine.py --model-dir SERVING_ROOT/fraud/VERSION
    python benchmarks/risk_engine.py --server HOST:PORT [--data RAW_DIR]

Simulates (or reads) a raw transaction stream, then scores it one transaction
at a time, in time order, two ways, alternating in blocks so both see the same
machine state:

  grpc     the bare Predict call with a request built beforehand (the floor)
  engine   RiskEngine.score: online features, routing, request building,
           the same Predict call, the decision policy

With --model-dir the server is `riskpipe serve` in a child process (so the
client's Python does not share a GIL with the server); with --server it is
an already running one. Prints throughput and p50/p99 latency of both and
the engine's added share at p50 (target: under 20%).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import List, Sequence

from common import runtime  # noqa: E402  # before TensorFlow is imported

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)

MODEL_NAME = "fraud"
TARGET_OVERHEAD = 0.20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-dir", help="a SavedModel version directory to serve")
    where.add_argument("--server", help="HOST:PORT of a running server of the model")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--data", help="raw transactions (CSV or partition dir); default: "
                                       "simulated")
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30, help="days of simulated data")
    parser.add_argument("--block", type=int, default=1000,
                        help="transactions per alternating block")
    parser.add_argument("--warmup", type=int, default=500,
                        help="calls of each kind before measuring")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: str, work: str, model_name: str):
    """`riskpipe serve` on loopback over a base path holding `model_dir` as version 1."""
    base = os.path.join(work, "serving", model_name)
    shutil.copytree(model_dir, os.path.join(base, "1"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", f"--port={port}",
         f"--model_name={model_name}", f"--model_base_path={base}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"127.0.0.1:{port}"


def load_transactions(args, work: str):
    from cli.engine_commands import read_input  # pylint: disable=import-outside-toplevel

    path = args.data
    if path is None:
        from datagen.dataset import write_dataset  # pylint: disable=import-outside-toplevel
        from datagen.simulator import SimulationConfig  # pylint: disable=import-outside-toplevel

        path = os.path.join(work, "raw")
        write_dataset(SimulationConfig(transactions=args.transactions, days=args.days,
                                       seed=1), path)
    return read_input(path)[:args.transactions]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered))) - 1))]


def measure(args) -> int:
    from components.features import OnlineFeatureBuilder  # pylint: disable=import-outside-toplevel
    from engine.client import (  # pylint: disable=import-outside-toplevel
        ClientOptions, RiskEngineClient)
    from engine.risk_engine import RiskEngine  # pylint: disable=import-outside-toplevel
    from engine.policy import (  # pylint: disable=import-outside-toplevel
        default_policy_path, load_policy)
    from engine.routing import Router  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="risk-engine-bench-")
    process = None
    try:
        started = time.perf_counter()
        transactions = load_transactions(args, work)
        print(f"{len(transactions)} transactions ready in {time.perf_counter() - started:.1f}s",
              flush=True)
        address = args.server
        if args.model_dir:
            process, address = start_server(args.model_dir, work, args.model_name)
        options = ClientOptions(addresses=(address,), model_name=args.model_name,
                                deadline_seconds=10.0)
        client = wait_for_client(RiskEngineClient, options)
        try:
            # The bare call's requests, built beforehand from an independent feature pass.
            builder = OnlineFeatureBuilder()
            requests = [client.build_request([builder.update(txn)]) for txn in transactions]
            stub = client.servers[0].prediction
            engine = RiskEngine(client, load_policy(default_policy_path()),
                                Router(args.model_name, None))
            warm_up(stub, requests, args.warmup)
            bare, end_to_end, wall = run_blocks(stub, engine, transactions, requests, args.block)
        finally:
            client.close()
        report(len(transactions), bare, end_to_end, wall)
        return 0
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def wait_for_client(client_class, options, timeout: float = 180.0):
    """A client once the server's health check passes (it loads the model first)."""
    client = client_class(options)
    deadline = time.monotonic() + timeout
    while not all(server.healthy for server in client.servers):
        if time.monotonic() > deadline:
            client.close()
            raise SystemExit(f"the server at {options.addresses} did not become healthy in "
                             f"{timeout:.0f}s")
        time.sleep(0.2)
        client.check_all()
    return client


def warm_up(stub, requests, count: int) -> None:
    for i in range(count):
        stub.Predict(requests[i % len(requests)], timeout=10.0)


def run_blocks(stub, engine, transactions, requests, block: int):
    """Alternates a block of bare calls and a block of engine scorings over the stream."""
    bare: List[float] = []
    end_to_end: List[float] = []
    wall = {"grpc": 0.0, "engine": 0.0}
    for start in range(0, len(transactions), block):
        chunk = range(start, min(start + block, len(transactions)))
        t0 = time.perf_counter()
        for i in chunk:
            t = time.perf_counter()
            stub.Predict(requests[i], timeout=10.0)
            bare.append(time.perf_counter() - t)
        t1 = time.perf_counter()
        for i in chunk:
            t = time.perf_counter()
            record = engine.score(transactions[i])
            end_to_end.append(time.perf_counter() - t)
            if record["error"]:
                raise SystemExit(f"transaction {record['transaction_id']}: {record['error']}")
        t2 = time.perf_counter()
        wall["grpc"] += t1 - t0
        wall["engine"] += t2 - t1
    return bare, end_to_end, wall


def report(n: int, bare: List[float], end_to_end: List[float], wall) -> None:
    rows = [("grpc (bare Predict)", bare, wall["grpc"]),
            ("engine (features+gRPC+decision)", end_to_end, wall["engine"])]
    print(f"\n{'path':<34} {'n':>7} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values, seconds in rows:
        print(f"{name:<34} {len(values):>7} {len(values) / seconds:>9.0f} "
              f"{percentile(values, 50) * 1e3:>8.3f} {percentile(values, 99) * 1e3:>8.3f}")
    added = percentile(end_to_end, 50) / percentile(bare, 50) - 1.0
    verdict = "within" if added < TARGET_OVERHEAD else "ABOVE"
    print(f"\nfeatures + decision add {added:.1%} to the gRPC call at p50 ({verdict} the "
          f"{TARGET_OVERHEAD:.0%} target); {n} transactions, one at a time, one client thread")


def main(argv=None) -> int:
    return measure(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
