"""The contract between the exported model and everything that reads it.

The exporter (components/export.py) writes it, the Pusher publishes it, the
model server (serving/) loads and serves it, the risk engine's client and the
rollout controller (engine/) call and check it. Each fact is written here once:

- a model version is a numeric directory under the model's base path, complete
  once `saved_model.pb` is in it (the Pusher writes that file last);
- the signatures and their TF Serving method names, the input alias and the
  output key of the fraud score;
- the warmup file TF Serving replays before a version is AVAILABLE;
- the largest gRPC message either side accepts;
- the Prometheus metric names of tensorflow_model_server and riskpipe serve's own.

Paths go through TensorFlow's file systems (tf.io.gfile), so a base path may
be local or a bucket URI TensorFlow reads. TensorFlow and the TF Serving protos
are imported inside the functions that need them: the constants cost nothing.
"""
import os
from typing import Callable, Dict, Iterable, List

# --- the SavedModel and its signatures --------------------------------------------------

SAVED_MODEL_FILENAME = "saved_model.pb"
SERVE_TAG = "serve"

SERVING_DEFAULT = "serving_default"  # serialized tf.Examples -> score
SERVING_RAW = "serving_raw"          # one tensor per model feature -> score
CLASSIFICATION = "classification"    # TF Serving's Classify API
REGRESSION = "regression"            # TF Serving's Regress API
# What a Predict client may call; `serving_default` when a request names none.
PREDICT_SIGNATURES = (SERVING_DEFAULT, SERVING_RAW)
DEFAULT_SIGNATURE = SERVING_DEFAULT

# The input alias of the tf.Example signature (TFX's convention) and the output
# key of the fraud score in serving_default and serving_raw.
EXAMPLES_INPUT = "examples"
OUTPUT_KEY = "fraud_probability"
# Their second output: the model's score before the prior correction for its
# class weights (fraud_probability is the calibrated one).
RAW_SCORE_KEY = "raw_score"

# The credit default model (task credit): the calibrated probability of default,
# the same score on the scorecard's points scale, and the `explain` signature's
# reason codes: per application the k features that push its score most toward
# default (names, string [None, k]) and their contributions to the log-odds of
# default (float [None, k]), strongest first.
DEFAULT_PROBABILITY_KEY = "default_probability"
SCORE_POINTS_KEY = "score_points"
EXPLAIN = "explain"
REASON_CODES_KEY = "reason_codes"
REASON_CONTRIBUTIONS_KEY = "reason_contributions"
# The calibrated probability a model of either task returns.
PROBABILITY_KEYS = (OUTPUT_KEY, DEFAULT_PROBABILITY_KEY)

# TF Serving serves Classify and Regress only from signatures with these method
# names; tf.saved_model.save writes every signature with PREDICT_METHOD.
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
SIGNATURE_METHODS = {CLASSIFICATION: CLASSIFY_METHOD, REGRESSION: REGRESS_METHOD}

# The aliases TF Serving's Classify and Regress APIs require.
CLASSIFY_INPUTS = "inputs"
CLASSIFY_OUTPUT_CLASSES = "classes"
CLASSIFY_OUTPUT_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"

# --- the wire ---------------------------------------------------------------------------

# The largest request or response message, on the server and in the clients.
# Python gRPC rejects a larger request with RESOURCE_EXHAUSTED before it reaches
# a handler (TF Serving's own limit is INT_MAX); a server raises it with
# --grpc_channel_arguments=grpc.max_receive_message_length=N.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# tensorflow_model_server's Prometheus metric names.
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
LOAD_ATTEMPT_COUNT = ":tensorflow:cc:saved_model:load_attempt_count"
# riskpipe serve's own: CPU seconds spent in each version's model calls.
MODEL_CPU_SECONDS = "riskpipe_serving_model_cpu_seconds_total"
# What a drift monitor compares per version: the scores returned (a histogram on
# [0, 1]) and, per input feature, the values sent, their sum and the missing ones.
SCORE = "riskpipe_serving_score"
FEATURE_VALUES = "riskpipe_serving_feature_values_total"
FEATURE_VALUE_SUM = "riskpipe_serving_feature_value_sum_total"
FEATURE_MISSING = "riskpipe_serving_feature_missing_total"

# --- version directories ----------------------------------------------------------------


def is_complete_version(version_dir: str) -> bool:
    """Whether a version directory holds its saved_model.pb, which is written last."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.io.gfile.exists(os.path.join(version_dir, SAVED_MODEL_FILENAME))


def complete_versions(base_path: str) -> Dict[int, str]:
    """{version: directory} of the complete numeric versions under a model's base path."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if not tf.io.gfile.isdir(base_path):
        return {}
    found = {}
    for name in (entry.rstrip("/") for entry in tf.io.gfile.listdir(base_path)):
        path = os.path.join(base_path, name)
        if name.isdigit() and is_complete_version(path):
            found[int(name)] = path
    return found


def read_saved_model(version_dir: str):
    """The SavedModel proto of a version directory's saved_model.pb."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel

    with tf.io.gfile.GFile(os.path.join(version_dir, SAVED_MODEL_FILENAME), "rb") as handle:
        return saved_model_pb2.SavedModel.FromString(handle.read())


def serving_meta_graph(saved_model):
    """The MetaGraphDef tagged `serve`, or None."""
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    return None


# --- warmup -----------------------------------------------------------------------------

# <version>/assets.extra/tf_serving_warmup_requests: a TFRecord of PredictionLog
# records, replayed by the server before the version becomes AVAILABLE; a
# failing record fails the load.
WARMUP_DIRNAME = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000


def warmup_path(version_dir: str) -> str:
    return os.path.join(version_dir, WARMUP_DIRNAME, WARMUP_FILENAME)


def write_warmup_requests(version_dir: str, logs: Iterable) -> str:
    """Writes PredictionLog records as a version's warmup file; returns its path."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    logs = list(logs)
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(logs)} warmup records: at most {MAX_WARMUP_RECORDS} are replayed")
    path = warmup_path(version_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str) -> List:
    """The version's warmup records (PredictionLog); empty when it ships none."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel

    path = warmup_path(version_dir)
    if not tf.io.gfile.exists(path):
        return []
    records = []
    for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS + 1):
        records.append(prediction_log_pb2.PredictionLog.FromString(record.numpy()))
    if len(records) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
    return records


def replay_warmup(logs: Iterable, handlers: Dict[str, Callable]) -> int:
    """Runs each record's request through handlers[log_type]; returns how many ran.

    A record of a kind without a handler is an error, as in TF Serving.
    """
    count = 0
    for index, log in enumerate(logs):
        kind = log.WhichOneof("log_type")
        if kind not in handlers:
            raise ValueError(f"Unsupported log_type for warmup: {kind} (record {index})")
        handlers[kind](getattr(log, kind).request)
        count += 1
    return count
