"""Compressed fraud models side by side: size, speed, served cost and detection, in one run.

    .venv/bin/python benchmarks/compression.py [--transactions 1000000] [--data RAW_DIR]
                                               [--work-dir DIR] [--requests 2000]

Simulates the transactions (or takes `--data`, a `riskpipe generate` output),
runs FeatureGen, StatisticsGen and Transform once, then `riskpipe run` once per
variant (VARIANTS) on the same pipeline root with caching on: only the
`trainer:` section differs, with one seed, so every variant trains on the same
split through the same Transform graph. The int8 TFLite forms come from the
default variant's run (`trainer.tflite_int8`).

Per variant: trainable and non-zero parameters (the Trainer's compression.json),
the SavedModel's size on disk and gzipped (warmup requests left out), in-process
microseconds per serving_default call at batch 1 and 64 on the Session call
path riskpipe serve uses (median of repeated calls), the median latency and
the server's CPU per transaction under 8 clients of one transaction each
against `riskpipe serve --enable_batching` (TLS on loopback), PR-AUC, ROC-AUC,
KS and recall at 1% FPR on the eval split, and the Trainer's CPU seconds from
the run's cost ledger. TFLite rows time the network alone on transformed
inputs (the Transform is not in them) and cannot be served by riskpipe serve.

Targets: a variant with at most 25% of the dense baseline's non-zero
parameters loses at most 0.01 PR-AUC; the distilled student at least matches
the same small network trained without a teacher. Not a test: about half an
hour at 1 M transactions on 2 cores.
"""
import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
import serving_latency  # noqa: E402  # chooses Keras 2 before TensorFlow loads
from measure import fresh_work_directory, riskpipe_command, write_yaml  # noqa: E402
from pipeline_scale import model_scores, node_execution, node_outputs, read_split, simulate  # noqa: E402,E501
from scoring import quality  # noqa: E402
from components import compression  # noqa: E402
from components.credit.metrics import ks  # noqa: E402
from components.metric_names import KS, PR_AUC, RECALL_AT_FPR, ROC_AUC  # noqa: E402
from components.trainer import COMPRESSION_FILE  # noqa: E402
from pipeline import pipeline as dag  # noqa: E402

SMALL = [16, 8]
DEFAULT = "pruned 50% (default)"
DENSE = "dense (64, 32)"
STUDENT_ALONE = "small (16, 8), no teacher"
DISTILLED = "distilled (16, 8), teacher 4x"
VARIANTS = (
    (DENSE, {"target_sparsity": 0.0}),
    (DEFAULT, {"tflite_int8": True}),
    ("pruned 80%", {"target_sparsity": 0.8}),
    ("pruned 50% + QAT", {"quantization_aware": True}),
    (STUDENT_ALONE, {"hidden_units": SMALL, "target_sparsity": 0.0}),
    (DISTILLED, {"hidden_units": SMALL, "target_sparsity": 0.0, "teacher_width_multiplier": 4}),
)
# The default variant's TFLite forms: (row name, file in its model_run directory).
TFLITE_FORMS = (("TFLite int8 of the default", compression.TFLITE_FILE),
                ("TFLite int8 weights of the default", compression.TFLITE_WEIGHTS_FILE))
UPSTREAM_TRAINER = {"epochs": 1, "target_sparsity": 0.0}
MAX_NONZERO_SHARE = 0.25
MAX_PR_AUC_LOSS = 0.01
TIMED_CALLS = 300
BATCHES = (1, 64)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--fraud-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the simulation and every variant's training")
    parser.add_argument("--data", help="a `riskpipe generate` output to use instead of "
                                       "simulating")
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests of the served measurement (default 2000)")
    parser.add_argument("--work-dir", help="keeps the pipeline root here (default: a "
                                           "temporary directory, removed)")
    return parser.parse_args(argv)


def _slug(name: str) -> str:
    """A variant's name as a file name."""
    return re.sub(r"\W+", "-", name).strip("-")


def run_variant(args, work: str, data: str, name: str, trainer: dict) -> dict:
    """`riskpipe run` with the variant's trainer section; its Trainer outputs and CPU seconds."""
    # pylint: disable=import-outside-toplevel
    from pipeline.cost_ledger import stored_cost

    print(f"\n{name}: trainer {trainer}", flush=True)
    root = os.path.join(work, "pipeline")
    config = write_yaml(os.path.join(work, _slug(name) + ".yaml"),
                        {"trainer": {"seed": args.seed, **trainer}})
    subprocess.run(riskpipe_command(
        "run", "--data", data, "--pipeline-root", root, "--serving-root",
        os.path.join(work, "serving"), "--config", config), cwd=REPO, check=True)
    metadata = os.path.join(root, "metadata.sqlite")
    outputs = node_outputs(metadata, dag.TRAINER)
    return {"model_dir": os.path.join(outputs["model"][0].uri, "Format-Serving"),
            "model_run": outputs["model_run"][0].uri,
            "trainer_cpu_s": stored_cost(node_execution(metadata, dag.TRAINER)[1],
                                         dag.TRAINER).cpu_seconds}


def saved_model_bytes(model_dir: str):
    """(bytes on disk, gzipped tar bytes) of a SavedModel without its warmup requests."""
    paths = [os.path.join(directory, file) for directory, _, files in os.walk(model_dir)
             for file in files if "assets.extra" not in directory]
    archive = os.path.join(os.path.dirname(model_dir), "model.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for path in paths:
            tar.add(path, arcname=os.path.relpath(path, model_dir))
    size = os.path.getsize(archive)
    os.remove(archive)
    return sum(os.path.getsize(path) for path in paths), size


def median_us(call) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(TIMED_CALLS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def in_process_us(model_dir: str, examples) -> dict:
    """Batch size -> median microseconds of serving_default on the Session call path."""
    # pylint: disable=import-outside-toplevel
    import numpy as np

    from common.serving_contract import EXAMPLES_INPUT, OUTPUT_KEY, SERVING_DEFAULT
    from serving.servable import load_servable

    servable = load_servable("fraud", 1, model_dir, model_call_path=serving_latency.AFTER)
    return {size: median_us(lambda batch=np.array(examples[:size], dtype=object): servable.run(
        SERVING_DEFAULT, {EXAMPLES_INPUT: batch}, [OUTPUT_KEY])) for size in BATCHES}


class Server:
    """TLS certificates and `riskpipe serve --enable_batching` (batches <= 8) per model."""

    def __init__(self, work: str):
        # pylint: disable=import-outside-toplevel
        from serving import certs, tls

        self.work = work
        self.files = certs.make_certificates(os.path.join(work, "certs"))
        self.client_tls = tls.client_tls_from_files(self.files.ca_cert)
        self.batching = os.path.join(work, "batching.config")
        with open(self.batching, "w") as handle:
            handle.write(serving_latency.BATCHING[serving_latency.SINGLE_BATCHED])

    def measure(self, name: str, model_dir: str, examples, requests: int):
        """(median ms, server CPU ms per transaction) under 8 clients of one transaction."""
        base = os.path.join(self.work, "served", _slug(name), "fraud")
        os.makedirs(base)
        os.symlink(os.path.abspath(model_dir), os.path.join(base, "1"))
        process, port = serving_latency.start_riskpipe(base, self.files.server_ssl_config,
                                                       self.batching)
        try:
            address = f"localhost:{port}"
            serving_latency.wait_serving(address, self.client_tls)
            row = serving_latency.grpc_row(address, process.pid, self.client_tls, examples,
                                           serving_latency.Load(requests), True)
        finally:
            serving_latency.stop(process)
        return row[7], row[6]  # the 8x1 load's p50, the server's CPU ms per transaction


def measure_variant(result: dict, evaluation, server: Server, name: str, requests: int) -> dict:
    from pipeline.run_summary import read_model_run_json  # pylint: disable=import-outside-toplevel

    serialized, labels = evaluation
    report = read_model_run_json(result["model_run"], COMPRESSION_FILE)
    scores = model_scores(result["model_dir"], serialized)
    examples = list(serialized[:64])
    size, gzipped = saved_model_bytes(result["model_dir"])
    served_ms, cpu_ms = server.measure(name, result["model_dir"], examples, requests)
    return {"trainable": report["trainable_parameters"], "nonzero": report["nonzero_parameters"],
            "bytes": size, "gzipped": gzipped, "us": in_process_us(result["model_dir"], examples),
            "served_ms": served_ms, "cpu_ms": cpu_ms, **quality(labels, scores),
            KS: ks(labels, scores), "trainer_cpu_s": result["trainer_cpu_s"],
            "distillation": report["distillation"]}


def measure_tflite(result: dict, evaluation_inputs, labels, file_name: str) -> dict:
    """A TFLite form of the default variant, scored on the transformed eval split."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    path = os.path.join(result["model_run"], file_name)
    with open(path, "rb") as handle:
        content = handle.read()
    scores = compression.TfliteScorer(content, 512).probabilities(evaluation_inputs)
    us = {}
    for size in BATCHES:
        scorer = compression.TfliteScorer(content, size)
        batch = {name: np.ascontiguousarray(value[:size])
                 for name, value in evaluation_inputs.items()}
        us[size] = median_us(lambda scorer=scorer, batch=batch: scorer.logits(batch))
    with open(path, "rb") as handle:
        gzipped = len(gzip.compress(handle.read()))
    return {"bytes": len(content), "gzipped": gzipped, "us": us, **quality(labels, scores),
            KS: ks(labels, scores)}


def transformed_eval_inputs(work: str, labels):
    """The eval split's model inputs through the pipeline's Transform graph, row for row
    as `labels`."""
    # pylint: disable=import-outside-toplevel
    import numpy as np
    import tensorflow_transform as tft
    from tfx.components.trainer import fn_args_utils
    from tfx.proto import trainer_pb2
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.utils import proto_utils

    from components.transformed_arrays import read_split as read_transformed

    metadata = os.path.join(work, "pipeline", "metadata.sqlite")
    examples = standard_artifacts.Examples()
    examples.uri = node_outputs(metadata, dag.FEATURE_GEN)["examples"][0].uri
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    graph = node_outputs(metadata, dag.TRANSFORM)["transform_graph"][0].uri
    files = [os.path.join(artifact_utils.get_split_uri([examples], "eval"), "*")]
    accessor = fn_args_utils.get_common_fn_args(
        {"examples": [examples]}, {"train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs()),
                                   "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs())},
        working_dir=work).data_accessor
    split = read_transformed(files, accessor, tft.TFTransformOutput(graph))
    if not np.array_equal(split.labels, labels):
        raise RuntimeError("the transformed eval split is not in the order of the raw one")
    return split.model_inputs()


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def print_report(args, rows: dict, served: dict) -> bool:
    print(f"\ncompression benchmark: {args.transactions:,} transactions, seed {args.seed}, "
          f"{os.cpu_count()} cores, {args.requests} served requests")
    header = (f"{'variant':<36}{'params':>8}{'nonzero':>8}{'KB':>7}{'KB gz':>7}"
              f"{'us b1':>8}{'us b64':>8}{'srv ms':>7}{'cpu ms':>7}{'PR-AUC':>8}{'ROC-AUC':>8}"
              f"{'KS':>7}{'R@1%':>7}{'train s':>8}")
    print(header)
    for name, row in rows.items():
        in_server = name in served
        print(f"{name:<36}{row.get('trainable', '-'):>8}{row.get('nonzero', '-'):>8}"
              f"{row['bytes'] / 1024:>7.1f}{row['gzipped'] / 1024:>7.1f}"
              f"{row['us'][1]:>8.0f}{row['us'][64]:>8.0f}"
              + (f"{row['served_ms']:>7.2f}{row['cpu_ms']:>7.3f}" if in_server else
                 f"{'-':>7}{'-':>7}")
              + f"{row[PR_AUC]:>8.4f}{row[ROC_AUC]:>8.4f}{row[KS]:>7.4f}"
              f"{row[RECALL_AT_FPR]:>7.3f}"
              + (f"{row['trainer_cpu_s']:>8.1f}" if in_server else f"{'-':>8}"))
    print("(params: trainable parameters; KB: SavedModel without warmup requests, or the "
          "TFLite file; us b1/b64: in-process microseconds per call; srv ms / cpu ms: median "
          "latency and server CPU per transaction, 8 clients x 1 transaction, batching on; "
          "train s: the Trainer's CPU seconds; TFLite rows: the network alone on "
          "transformed inputs)")
    return check_targets(rows, served)


def check_targets(rows: dict, served: dict) -> bool:
    dense = rows[DENSE]
    small = [name for name in served if rows[name]["nonzero"] <= MAX_NONZERO_SHARE *
             dense["nonzero"]]
    best = max(small, key=lambda name: rows[name][PR_AUC], default=None)
    met_small = best is not None and dense[PR_AUC] - rows[best][PR_AUC] <= MAX_PR_AUC_LOSS
    print(f"\ntarget: a variant with <= {MAX_NONZERO_SHARE:.0%} of the dense model's "
          f"{dense['nonzero']} non-zero parameters loses <= {MAX_PR_AUC_LOSS} PR-AUC: "
          + (f"{best} ({rows[best]['nonzero']} non-zero, "
             f"{rows[best][PR_AUC] - dense[PR_AUC]:+.4f}): " if best else "none so small: ")
          + _verdict(met_small))
    gain = rows[DISTILLED][PR_AUC] - rows[STUDENT_ALONE][PR_AUC]
    print(f"target: the distilled student matches the same network without a teacher: "
          f"PR-AUC {gain:+.4f}: {_verdict(gain >= 0)}")
    teacher = rows[DISTILLED]["distillation"]["teacher_validation"]
    print(f"(the teacher {rows[DISTILLED]['distillation']['teacher_hidden_units']}: "
          f"validation PR-AUC {teacher.get('val_pr_auc', float('nan')):.4f} by Keras's "
          "threshold grid)")
    return met_small and gain >= 0


def main(argv=None) -> int:
    args = parse_args(argv)
    with fresh_work_directory(args.work_dir, "riskpipe-compression-") as work:
        data = args.data or os.path.join(work, "raw")
        if not args.data:
            print(f"simulating {args.transactions:,} transactions ...", flush=True)
            simulate(args, args.transactions, data)
        run_variant(args, work, data, "upstream", UPSTREAM_TRAINER)
        trained = {name: run_variant(args, work, data, name, trainer)
                   for name, trainer in VARIANTS}
        examples = node_outputs(os.path.join(work, "pipeline", "metadata.sqlite"),
                                dag.FEATURE_GEN)["examples"][0].uri
        serialized, _, labels = read_split(examples, "eval")
        server = Server(work)
        rows = {name: measure_variant(result, (serialized, labels), server, name, args.requests)
                for name, result in trained.items()}
        served = set(rows)
        inputs = transformed_eval_inputs(work, labels)
        for name, file_name in TFLITE_FORMS:
            rows[name] = measure_tflite(trained[DEFAULT], inputs, labels, file_name)
        with open(os.path.join(work, "compression.json"), "w") as handle:
            json.dump(rows, handle, indent=1, default=str)
        met = print_report(args, rows, served)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
