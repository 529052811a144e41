"""In-process cost of one serving_default call: the Transform layer's graph against the lean one.

From one trained fraud model, in one process and run, three SavedModels:
  transform layer  the reference graph (components/export.py TRANSFORM_LAYER): the
                   whole tf.Transform layer, then the Keras model
  lean             the graph the pipeline exports (export.LEAN)
  identity         a do-nothing tf.identity of the serialized examples: the floor
each called on the same serialized examples through both model call paths of
serving/servable.py, loaded as the server loads them (`load_servable`) and
called as it calls them (`Servable.run`): the session callable, ops in the
caller's thread, and the TF2 concrete function. Microseconds per call at 1 and
64 examples: the median over rounds, each round running every variant in turn
(rotating who goes first) so that noise hits them alike. Beside them the graph
nodes of the serving_default function (its function bodies) and the nodes the
session runs per call.

    python benchmarks/serving_graph.py [--model_dir VERSION_DIR --transform_graph DIR]
                                       [--rounds 15] [--calls 100] [--work_dir DIR]

Without --model_dir it trains a small pipeline (benchmarks/serving_latency.py
`train_pushed_model`, about a minute) and takes its pushed version and Transform
graph. The Keras model is rebuilt from the version's variables (build_model's
architecture, pruned or not; a quantization-aware model is refused), and the
two graphs are exported from it; their scores are checked against each other
and the version's before anything is timed.
Targets: lean / identity <= 1.5 at one example; transform layer / lean >= 2 at 64.
"""
import argparse
import glob
import itertools
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from common import runtime  # noqa: E402  # before TensorFlow is imported

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)
# pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
from measure import work_directory  # noqa: E402
from serving_latency import model_and_examples  # noqa: E402

REFERENCE, LEAN, IDENTITY = "transform layer", "lean", "identity"
BATCHES = (1, 64)
TARGET_LEAN_PER_IDENTITY = 1.5   # at one example
TARGET_REFERENCE_PER_LEAN = 2.0  # at 64 examples
PARITY = 1e-6


def rebuild_model(version_dir: str, tf_transform_output):
    """The Keras model of a pushed version, rebuilt from the variables it saved."""
    import tensorflow as tf
    from components import model as model_lib

    weights = {v.name: v.numpy() for v in tf.saved_model.load(version_dir).model_variables}
    hidden = []
    while f"hidden_{len(hidden)}/kernel:0" in weights:
        hidden.append(weights[f"hidden_{len(hidden)}/kernel:0"].shape[1])
    embedding_dims = [w.shape[1] for n, w in weights.items() if n.endswith("/embeddings:0")]
    model = model_lib.build_model(tf_transform_output, hidden, (embedding_dims or [1])[0],
                                  wide="wide_logit/kernel:0" in weights)
    names = {v.name for v in model.variables}
    if names != set(weights):
        raise SystemExit(f"{version_dir}: not build_model's architecture (a quantization-aware "
                         f"model?): variables {sorted(set(weights) ^ names)} differ")
    for variable in model.variables:
        variable.assign(weights[variable.name])
    return model


def served_logit_shift(version_dir: str, examples) -> float:
    """The version's prior correction, read back from its two outputs."""
    import numpy as np
    import tensorflow as tf
    from common.serving_contract import OUTPUT_KEY, RAW_SCORE_KEY, SERVING_DEFAULT
    from components.export import logit

    outputs = tf.saved_model.load(version_dir).signatures[SERVING_DEFAULT](
        examples=tf.constant(examples))
    return float(np.median(logit(outputs[RAW_SCORE_KEY]) - logit(outputs[OUTPUT_KEY])))


def export_variants(version_dir: str, transform_graph: str, examples, out_dir: str):
    """{variant: SavedModel directory}, the two graphs exported from the version's model."""
    import tensorflow as tf
    import tensorflow_transform as tft
    from common.serving_contract import EXAMPLES_INPUT, OUTPUT_KEY, SERVING_DEFAULT
    from components import export

    tf_transform_output = tft.TFTransformOutput(transform_graph)
    model = rebuild_model(version_dir, tf_transform_output)
    shift = served_logit_shift(version_dir, examples)
    paths = {name: os.path.join(out_dir, name.replace(" ", "_"))
             for name in (REFERENCE, LEAN, IDENTITY)}
    for name, graph in ((REFERENCE, export.TRANSFORM_LAYER), (LEAN, export.LEAN)):
        export.export_serving_model(model, tf_transform_output, paths[name], examples, 3, shift,
                                    serving_graph=graph)
    identity = tf.Module()
    identity.serve = tf.function(lambda examples: {OUTPUT_KEY: tf.identity(examples)},
                                 input_signature=[tf.TensorSpec([None], tf.string,
                                                                name=EXAMPLES_INPUT)])
    tf.saved_model.save(identity, paths[IDENTITY], signatures={SERVING_DEFAULT: identity.serve})
    return paths


def check_parity(version_dir: str, paths, examples) -> float:
    """The largest score difference between the lean graph, the reference and the version."""
    import numpy as np
    import tensorflow as tf
    from common.serving_contract import OUTPUT_KEY, RAW_SCORE_KEY, SERVING_DEFAULT

    scores = {}
    for name, path in ((REFERENCE, paths[REFERENCE]), (LEAN, paths[LEAN]), ("version", version_dir)):
        outputs = tf.saved_model.load(path).signatures[SERVING_DEFAULT](
            examples=tf.constant(examples))
        scores[name] = np.stack([outputs[OUTPUT_KEY].numpy(), outputs[RAW_SCORE_KEY].numpy()])
    worst = max(float(np.max(np.abs(scores[LEAN] - scores[other])))
                for other in (REFERENCE, "version"))
    if worst > PARITY:
        raise SystemExit(f"the lean graph's scores differ by {worst:.2g} (> {PARITY})")
    return worst


def graph_nodes(path: str) -> int:
    import tensorflow as tf
    from common.serving_contract import SERVING_DEFAULT

    graph_def = tf.saved_model.load(path).signatures[SERVING_DEFAULT].graph.as_graph_def()
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


def session_nodes(served, batch) -> int:
    """The nodes the session runs for one call, from a traced run."""
    from tensorflow.core.protobuf import config_pb2
    from common.serving_contract import EXAMPLES_INPUT, OUTPUT_KEY, SERVING_DEFAULT

    signature = served.signature_defs[SERVING_DEFAULT]
    options = config_pb2.RunOptions(trace_level=config_pb2.RunOptions.FULL_TRACE,
                                    inter_op_thread_pool=-1)
    metadata = config_pb2.RunMetadata()
    served.session.run(signature.outputs[OUTPUT_KEY].name,
                       {signature.inputs[EXAMPLES_INPUT].name: batch}, options=options,
                       run_metadata=metadata)
    return sum(len(device.node_stats) for device in metadata.step_stats.dev_stats)


def measure(servables, batches, rounds: int, calls: int):
    """{(variant, path, batch): median microseconds per call}."""
    from common.serving_contract import EXAMPLES_INPUT, OUTPUT_KEY, SERVING_DEFAULT

    cases = list(itertools.product(servables, batches))
    per_call = {}
    for round_index in range(rounds):
        shift = round_index % len(cases)
        for (key, batch) in cases[shift:] + cases[:shift]:
            run = servables[key].run
            inputs = {EXAMPLES_INPUT: batches[batch]}
            for _ in range(10):
                run(SERVING_DEFAULT, inputs, (OUTPUT_KEY,))
            started = time.perf_counter()
            for _ in range(calls):
                run(SERVING_DEFAULT, inputs, (OUTPUT_KEY,))
            per_call.setdefault((*key, batch), []).append(
                (time.perf_counter() - started) / calls * 1e6)
    return {key: statistics.median(values) for key, values in per_call.items()}


def verdict(ratio: float, target: float, at_most: bool) -> str:
    return "MET" if (ratio <= target if at_most else ratio >= target) else "NOT MET"


def print_report(timings, nodes, run_nodes, worst: float) -> None:
    from serving.options import SESSION, TF2_FUNCTION

    paths = (SESSION, TF2_FUNCTION)
    print(f"\nscores: lean vs transform layer and the version, max |difference| {worst:.2g}\n")
    header = (f"{'variant':<17}{'graph nodes':>12}{'session runs':>14}"
              + "".join(f"{f'{path} b{b} us':>20}" for path in paths for b in BATCHES))
    print(header)
    print("-" * len(header))
    for variant in (REFERENCE, LEAN, IDENTITY):
        print(f"{variant:<17}{nodes[variant]:>12}{run_nodes[variant]:>14}"
              + "".join(f"{timings[(variant, path, b)]:>20.1f}" for path in paths for b in BATCHES))
    print()
    for path in paths:
        lean_identity = timings[(LEAN, path, 1)] / timings[(IDENTITY, path, 1)]
        reference_lean = timings[(REFERENCE, path, 64)] / timings[(LEAN, path, 64)]
        print(f"{path:<13} lean / identity at 1: {lean_identity:5.2f}x (target <= "
              f"{TARGET_LEAN_PER_IDENTITY}) {verdict(lean_identity, TARGET_LEAN_PER_IDENTITY, True)}"
              f";  transform layer / lean at 64: {reference_lean:5.2f}x (target >= "
              f"{TARGET_REFERENCE_PER_LEAN}) "
              f"{verdict(reference_lean, TARGET_REFERENCE_PER_LEAN, False)}")


def transform_graph_of(workdir: str) -> str:
    """The Transform graph of train_pushed_model's pipeline run."""
    (found,) = glob.glob(os.path.join(workdir, "pipeline", "Transform", "transform_graph", "*"))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default="", help="a pushed fraud model's version directory "
                        "(default: train a small pipeline and take its pushed model)")
    parser.add_argument("--transform_graph", default="",
                        help="the Transform graph the version was trained on (with --model_dir)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of measurement")
    parser.add_argument("--calls", type=int, default=100, help="calls per variant and round")
    parser.add_argument("--work_dir", default="", help="kept work directory (default: temporary)")
    args = parser.parse_args(argv)
    if bool(args.model_dir) != bool(args.transform_graph):
        parser.error("--model_dir and --transform_graph go together")

    import numpy as np
    from serving.options import SESSION, TF2_FUNCTION
    from serving.servable import load_servable

    with work_directory(args.work_dir, "riskpipe-serving-graph-") as workdir:
        version_dir, examples = model_and_examples(args.model_dir, False, workdir)
        transform_graph = args.transform_graph or transform_graph_of(workdir)
        paths = export_variants(version_dir, transform_graph, examples,
                                os.path.join(workdir, "graphs"))
        worst = check_parity(version_dir, paths, examples)
        batches = {b: np.array(list(itertools.islice(itertools.cycle(examples), b)), dtype=object)
                   for b in BATCHES}
        servables = {(variant, path): load_servable(variant, 1, paths[variant],
                                                    model_call_path=path)
                     for variant in paths for path in (SESSION, TF2_FUNCTION)}
        nodes = {variant: graph_nodes(path) for variant, path in paths.items()}
        run_nodes = {variant: session_nodes(servables[(variant, SESSION)], batches[1])
                     for variant in paths}
        timings = measure(servables, batches, args.rounds, args.calls)
        print_report(timings, nodes, run_nodes, worst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
