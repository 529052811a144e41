"""The server's pieces on their own: config protos, tensors, version policy, batching, flags."""
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.config import file_system_storage_path_source_pb2

from cli import main as cli
from common import serving_contract
from common.errors import UsageError
from serving import config_protos, errors, inference, tensors, version_policy
from serving.batching import BatchingOptions, BatchScheduler
from serving.event_loop import EventLoopThread
from serving.metrics import ServingMetrics
from serving.options import ServerOptions
from serving_helpers import wait_for

Policy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy


def _batching_parameters(text: str):
    return config_protos.parse_text_proto(text, config_protos.batching_parameters_class(), "b")


def test_tf_serving_batching_parameters_parse_with_tf_serving_field_names():
    text = ("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 500 }\n"
            "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 4 }\n"
            "allowed_batch_sizes: 32\nallowed_batch_sizes: 128\n")
    params = _batching_parameters(text)
    options = BatchingOptions.from_proto(params)
    assert options == BatchingOptions(128, 500, 100, 4, (32, 128))


def test_large_batch_splitting_parameters_parse_and_bound_each_model_call():
    text = ("max_batch_size { value: 64 }\nenable_large_batch_splitting { value: true }\n"
            "max_execution_batch_size { value: 16 }\nallowed_batch_sizes: 8\n"
            "allowed_batch_sizes: 16\n")
    params = _batching_parameters(text)
    options = BatchingOptions.from_proto(params)
    assert (options.max_batch_size, options.execution_batch_size) == (64, 16)
    # Without splitting, max_execution_batch_size is ignored, as in TF Serving.
    assert BatchingOptions(max_batch_size=64, max_execution_batch_size=16).execution_batch_size == 64


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 64 } enable_large_batch_splitting { value: true } "
     "max_execution_batch_size { value: 16 } allowed_batch_sizes: 64",
     r"end with max_execution_batch_size \(16\)"),
    ("max_batch_size { value: 8 } enable_large_batch_splitting { value: true } "
     "max_execution_batch_size { value: 16 }", "max_execution_batch_size must be between"),
])
def test_large_batch_splitting_parameters_tf_serving_rejects(text, message):
    params = _batching_parameters(text)
    with pytest.raises(UsageError, match=message):
        BatchingOptions.from_proto(params, "batching.config")


def test_batching_parameters_that_tf_serving_rejects_are_usage_errors():
    params = _batching_parameters("max_batch_size { value: 64 } allowed_batch_sizes: 32")
    with pytest.raises(UsageError, match="allowed_batch_sizes"):
        BatchingOptions.from_proto(params, "batching.config")


def test_unknown_field_in_a_config_names_the_file():
    with pytest.raises(UsageError, match=r"ssl\.config: .*no field named \"server_pem\""):
        config_protos.parse_text_proto('server_pem: "x"', config_protos.ssl_config_class(),
                                       "ssl.config")


@pytest.mark.parametrize("array", [
    np.array([0.25, 0.5], dtype=np.float32),
    np.arange(6, dtype=np.int64).reshape(2, 3),
    np.array([b"a", b"\x00\xff"], dtype=object),
    np.array([True, False]),
])
def test_tensor_protos_round_trip_and_match_tensorflow(array):
    proto = tensors.to_tensor_proto(array)
    decoded = tensors.to_ndarray(proto, "x")
    np.testing.assert_array_equal(decoded, array)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)


def test_tensor_from_repeated_values_fills_the_shape_like_tensorflow():
    proto = tf.make_tensor_proto([7.0], dtype=tf.float32, shape=[3])
    assert proto.float_val and not proto.tensor_content
    np.testing.assert_array_equal(tensors.to_ndarray(proto, "x"), [7.0, 7.0, 7.0])


def test_tensor_content_of_the_wrong_length_is_invalid_argument():
    proto = tensors.to_tensor_proto(np.zeros(4, dtype=np.float32))
    proto.tensor_shape.dim[0].size = 5
    with pytest.raises(errors.ServingError) as raised:
        tensors.to_ndarray(proto, "amount")
    assert raised.value.message == "tensor parsing error: amount"


@pytest.mark.parametrize("dims", [[1 << 40], [1 << 62, 1 << 62]])
def test_a_shape_that_would_expand_a_few_values_into_terabytes_is_invalid_argument(dims):
    proto = tensors.to_tensor_proto(np.zeros(0, dtype=np.float32))
    proto.ClearField("tensor_content")
    proto.tensor_shape.ClearField("dim")
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    proto.float_val.append(1.0)
    with pytest.raises(errors.ServingError) as raised:
        tensors.to_ndarray(proto, "amount")
    assert (raised.value.code, raised.value.message) == (
        grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: amount")


def test_missing_values_fill_with_the_last_one_or_zero_as_tensorflow_does():
    floats = tensors.to_tensor_proto(np.zeros(0, dtype=np.float32))
    floats.tensor_shape.dim[0].size = 3
    np.testing.assert_array_equal(tensors.to_ndarray(floats, "a"), [0.0, 0.0, 0.0])
    floats.float_val.extend([1.0, 2.0])
    np.testing.assert_array_equal(tensors.to_ndarray(floats, "a"), [1.0, 2.0, 2.0])
    strings = tensors.to_tensor_proto(np.array([], dtype=object))
    strings.tensor_shape.dim[0].size = 2
    assert list(tensors.to_ndarray(strings, "s")) == [b"", b""]


@pytest.mark.parametrize("policy, expected", [
    ("", {9}),
    ("latest { num_versions: 2 }", {5, 9}),
    ("all {}", {1, 5, 9}),
    ("specific { versions: 1 versions: 7 }", {1}),
])
def test_version_policies(policy, expected):
    proto = text_format.Parse(policy, Policy()) if policy else None
    assert version_policy.aspired_versions(proto, [1, 9, 5]) == expected


def test_only_numeric_directories_with_saved_model_pb_are_versions(tmp_path):
    for name, complete in (("1", True), ("2", False), ("tmp", True), (".3-copy", True)):
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "saved_model.pb").write_bytes(b"")
    assert serving_contract.complete_versions(str(tmp_path)) == {1: str(tmp_path / "1")}


class _DoublingServable:
    """Stands in for a model: doubles its input, and records each call's size and thread."""

    name, version = "fake", 1

    def __init__(self, gate: threading.Event = None):
        self.calls = []
        self.threads = []
        self.gate = gate

    def run(self, signature_name, inputs, output_keys):
        if self.gate is not None:
            self.gate.wait(10)
        values = inputs["x"]
        self.calls.append(len(values))
        self.threads.append(threading.current_thread().name)
        if np.any(values < 0):
            raise errors.invalid_argument("negative input")
        return {"y": values * 2}


@pytest.fixture
def event_loop_thread():
    loop = EventLoopThread("test-loop")
    yield loop
    loop.close()


def _submit_all(scheduler, servable, values_by_index):
    """Sends every request from its own thread; returns outputs or status names by index."""
    outcomes = {}

    def submit(index):
        try:
            outcomes[index] = scheduler.run(servable, "s", {"x": values_by_index[index]}, ["y"])["y"]
        except errors.ServingError as err:
            outcomes[index] = err.code.name

    threads = [threading.Thread(target=submit, args=(index,)) for index in values_by_index]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return outcomes


def test_scheduler_merges_waiting_requests_and_splits_the_answers(event_loop_thread):
    servable = _DoublingServable()
    # The batch closes when full (21 rows), long before its 10 s timeout.
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=21, batch_timeout_micros=10**7,
                                               num_batch_threads=1), event_loop_thread.loop)
    outcomes = _submit_all(scheduler, servable, {i: np.full(i + 1, i) for i in range(6)})
    scheduler.stop()
    for index in range(6):
        np.testing.assert_array_equal(outcomes[index], np.full(index + 1, 2 * index))
    assert servable.calls == [21]
    assert servable.threads == ["test-loop"]  # one batch thread: the event loop itself


def test_scheduler_fails_only_the_bad_request_of_a_batch(event_loop_thread):
    servable = _DoublingServable()
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=5, batch_timeout_micros=10**7),
                               event_loop_thread.loop)
    outcomes = _submit_all(scheduler, servable,
                           {i: np.array([-1 if i == 2 else i]) for i in range(5)})
    scheduler.stop()
    assert {i: getattr(out, "tolist", lambda: out)() for i, out in outcomes.items()} == {
        0: [0], 1: [2], 2: "INVALID_ARGUMENT", 3: [6], 4: [8]}
    assert servable.calls == [5, 1, 1, 1, 1, 1]  # the batch, then each request alone


def test_scheduler_runs_batches_on_num_batch_threads_and_bounds_the_queue(event_loop_thread):
    gate = threading.Event()
    servable = _DoublingServable(gate)
    options = BatchingOptions(max_batch_size=2, num_batch_threads=2, max_enqueued_batches=1)
    scheduler = BatchScheduler(options, event_loop_thread.loop)
    outcomes, senders = {}, []
    for index in range(3):
        senders.append(threading.Thread(target=lambda i=index: outcomes.update(
            _submit_all(scheduler, servable, {i: np.array([i, i])}))))
        senders[-1].start()
        # Two batches hold both batch threads; the third waits, filling the queue.
        wait_for(lambda i=index: (scheduler.stats()["batches"], scheduler.stats()["queued_rows"])
                 == ((i + 1, 0) if i < 2 else (2, 2)))
    with pytest.raises(errors.ServingError, match="queue to which this task was submitted is full"):
        scheduler.run(servable, "s", {"x": np.array([9, 9])}, ["y"])
    gate.set()
    for sender in senders:
        sender.join(timeout=20)
    scheduler.stop()
    assert {i: out.tolist() for i, out in outcomes.items()} == {0: [0, 0], 1: [2, 2], 2: [4, 4]}
    assert len(set(servable.threads)) == 2
    assert all(name.startswith("batch") for name in servable.threads)


def test_unbatched_calls_run_on_the_loop_unless_large(event_loop_thread):
    servable = _DoublingServable()
    with futures.ThreadPoolExecutor(1, thread_name_prefix="model") as pool:
        run = inference.unbatched_runner(pool)
        for rows in (1, inference.INLINE_MAX_ROWS, inference.INLINE_MAX_ROWS + 1):
            outputs = event_loop_thread.run(run(servable, "s", {"x": np.arange(rows)}, ["y"]))
            np.testing.assert_array_equal(outputs["y"], np.arange(rows) * 2)
    assert [name.split("_")[0] for name in servable.threads] == ["test-loop", "test-loop",
                                                                   "model"]


def test_scheduler_splits_a_large_request_into_execution_sized_calls(event_loop_thread):
    servable = _DoublingServable()
    scheduler = BatchScheduler(BatchingOptions(
        max_batch_size=10, enable_large_batch_splitting=True, max_execution_batch_size=4),
        event_loop_thread.loop)
    outputs = scheduler.run(servable, "s", {"x": np.arange(10)}, ["y"])
    np.testing.assert_array_equal(outputs["y"], np.arange(10) * 2)
    assert max(servable.calls) <= 4 and sum(servable.calls) == 10
    with pytest.raises(errors.ServingError, match="larger than maximum input batch size 10"):
        scheduler.run(servable, "s", {"x": np.arange(11)}, ["y"])
    scheduler.stop()


def test_scheduler_fails_a_split_request_when_one_chunk_fails(event_loop_thread):
    servable = _DoublingServable()
    scheduler = BatchScheduler(BatchingOptions(
        max_batch_size=10, enable_large_batch_splitting=True, max_execution_batch_size=4),
        event_loop_thread.loop)
    values = np.arange(10)
    values[6] = -1  # lands in the second chunk
    with pytest.raises(errors.ServingError, match="negative input"):
        scheduler.run(servable, "s", {"x": values}, ["y"])
    np.testing.assert_array_equal(scheduler.run(servable, "s", {"x": np.arange(3)}, ["y"])["y"],
                                  [0, 2, 4])
    scheduler.stop()


def test_scheduler_rejects_scalars_and_ragged_inputs(event_loop_thread):
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=10), event_loop_thread.loop)
    servable = _DoublingServable()
    with pytest.raises(errors.ServingError, match="at least one dimension"):
        scheduler.run(servable, "s", {"x": np.array(1.0)}, ["y"])
    with pytest.raises(errors.ServingError, match="equal 0th-dimension size"):
        scheduler.run(servable, "s", {"x": np.zeros(2), "z": np.zeros(3)}, ["y"])
    scheduler.stop()


def test_serve_takes_tensorflow_model_server_flag_spellings():
    args = cli.build_parser().parse_args([
        "serve", "--port=9000", "--model_name=fraud", "--model_base_path=/models/fraud",
        "--enable_batching=true", "--enable_model_warmup=false",
        "--file_system_poll_wait_seconds=5", "--grpc_channel_arguments=grpc.max_receive_message_length=10"])
    assert (args.port, args.model_name, args.enable_batching, args.enable_model_warmup) == (
        9000, "fraud", True, False)
    assert args.file_system_poll_wait_seconds == 5


def test_server_options_need_a_model_and_parse_channel_arguments():
    with pytest.raises(UsageError, match="--model_base_path or --model_config_file"):
        ServerOptions().validate()
    options = ServerOptions(model_base_path="/m",
                            grpc_channel_arguments="grpc.max_receive_message_length=10,x=y")
    arguments = dict(options.channel_arguments())
    assert arguments["grpc.max_receive_message_length"] == 10 and arguments["x"] == "y"
    with pytest.raises(UsageError, match="not key=value"):
        ServerOptions(model_base_path="/m", grpc_channel_arguments="oops").validate()


def test_certs_command_writes_configs_a_server_accepts(tmp_path, capsys):
    from serving import tls
    assert cli.main(["certs", "--out", str(tmp_path)]) == 0
    config = tls.load_ssl_config(str(tmp_path / "ssl_config_mtls.pbtxt"))
    assert config.client_verify and "BEGIN CERTIFICATE" in config.custom_ca
    assert cli.main(["certs", "--out", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_model_cpu_is_split_between_the_versions_whose_calls_ran():
    clock = iter([0.0, 1.0, 3.0, 4.0, 10.0, 12.0, 13.0])
    metrics = ServingMetrics(cpu_clock=lambda: next(clock))  # 0.0 is read at creation
    stable = metrics.model_call("fraud", 1)
    canary = metrics.model_call("fraud", 2)
    stable.__enter__()   # t=1: stable alone from here
    canary.__enter__()   # t=3: 2 s were stable's; both from here
    stable.__exit__(None, None, None)   # t=4: 1 s shared
    canary.__exit__(None, None, None)   # t=10: 6 s canary's alone
    with metrics.model_call("fraud", 1):  # t=12 to t=13, stable alone
        pass
    seconds = {labels[1][1]: value for (name, labels), value in _samples(metrics).items()
               if name == "riskpipe_serving_model_cpu_seconds_total"}
    assert seconds == pytest.approx({"1": 2.0 + 0.5 + 1.0, "2": 0.5 + 6.0})


def _samples(metrics: ServingMetrics) -> dict:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(metrics.exposition())
            for sample in family.samples}
