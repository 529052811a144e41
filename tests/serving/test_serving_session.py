"""The session call path (serving/servable.py): the same answers and errors as the
tf2_function path, thread safety, the session closed on unload, and the fallback."""
import gc
import logging
import os
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2

import model_fixtures
from common import serving_contract as contract
from common.serving_contract import (CLASSIFICATION, CLASSIFY_INPUTS, CLASSIFY_OUTPUT_CLASSES,
                                     CLASSIFY_OUTPUT_SCORES, EXAMPLES_INPUT, OUTPUT_KEY,
                                     REGRESS_INPUTS, REGRESSION, SERVING_DEFAULT,
                                     SERVING_RAW)
from serving import errors, servable as servables
from serving.metrics import ServingMetrics
from serving.model_manager import ModelManager, single_model_config
from serving.server import ModelServer
from serving.stage_timing import STAGES, StageTimes
from serving_helpers import (MODEL_NAME, Client, predict_request, running_server,
                             serialized_examples, server_options)

# The two paths run differently optimized graphs (the session's grappler pass
# inlines the signature's function), so a float may differ in its last bit, as
# the tf2_function path's own answers do between batch sizes.
RTOL, ATOL = 1e-6, 1e-7


def _array(values, dtype=object):
    array = np.empty(len(values), dtype=dtype)
    array[:] = values
    return array


def _signature_inputs(version_dir: str):
    """Inputs of every signature of the model, for a batch of 1 and one of many rows."""
    examples = serialized_examples(version_dir)
    raw = tf.io.parse_example(examples, {
        "amount": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
        "merchant_category": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "channel": tf.io.FixedLenFeature([], tf.string, default_value=""),
    })
    many = (examples * 40)[:77]
    for rows in (examples[:1], many):
        yield SERVING_DEFAULT, {EXAMPLES_INPUT: _array(rows)}
        yield CLASSIFICATION, {CLASSIFY_INPUTS: _array(rows)}
        yield REGRESSION, {REGRESS_INPUTS: _array(rows)}
    count = len(examples)
    for size in (1, count):
        yield SERVING_RAW, {name: values.numpy()[:size] for name, values in raw.items()}


@pytest.fixture(scope="module")
def both_paths(tiny_model_dir):
    session = servables.load_servable(MODEL_NAME, 1, tiny_model_dir)
    function = servables.load_servable(MODEL_NAME, 1, tiny_model_dir,
                                       model_call_path=servables.TF2_FUNCTION)
    assert (session.call_path, function.call_path) == (servables.SESSION, servables.TF2_FUNCTION)
    assert isinstance(session, servables.SessionServable), session.fallback_reason
    return session, function


def _assert_same(got, want):
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        assert got[key].shape == want[key].shape, key
        if want[key].dtype == object:
            assert got[key].tolist() == want[key].tolist(), key
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_session_path_answers_as_the_tf2_path_at_batch_1_and_many(both_paths, tiny_model_dir):
    session, function = both_paths
    assert session.signature_defs == function.signature_defs
    for key in (SERVING_DEFAULT, SERVING_RAW, CLASSIFICATION, REGRESSION):
        assert session.signature_def(key) == function.signature_def(key)
    assert session.signature_def(tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY + "x") is None
    assert session.signature_def("__saved_model_init_op") is None
    assert function.signature_def("__saved_model_init_op") is None
    seen = set()
    for signature_name, inputs in _signature_inputs(tiny_model_dir):
        outputs = sorted(session.signature_def(signature_name).outputs)
        _assert_same(session.run(signature_name, inputs, outputs),
                     function.run(signature_name, inputs, outputs))
        seen.add((signature_name, len(next(iter(inputs.values())))))
    assert len(seen) == 8


def test_session_path_answers_with_the_outputs_asked_in_their_order(both_paths, tiny_model_dir):
    session, function = both_paths
    inputs = {CLASSIFY_INPUTS: _array(serialized_examples(tiny_model_dir))}
    for keys in ([CLASSIFY_OUTPUT_SCORES], [CLASSIFY_OUTPUT_SCORES, CLASSIFY_OUTPUT_CLASSES],
                 [CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES]):
        got = session.run(CLASSIFICATION, inputs, keys)
        assert list(got) == keys
        _assert_same(got, function.run(CLASSIFICATION, inputs, keys))


def test_the_pushed_models_tables_are_initialized_on_the_session_path(model_dir):
    """The model under test (the pipeline's pushed model when the tree has its fixture):
    its Transform graph's vocabulary lookups answer as on the tf2_function path."""
    session = servables.load_servable(MODEL_NAME, 1, model_dir)
    function = servables.load_servable(MODEL_NAME, 1, model_dir,
                                       model_call_path=servables.TF2_FUNCTION)
    assert session.call_path == servables.SESSION, session.fallback_reason
    examples = serialized_examples(model_dir)
    for rows in (examples[:1], examples):
        inputs = {EXAMPLES_INPUT: _array(rows)}
        _assert_same(session.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY]),
                     function.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY]))


def test_an_error_in_the_graph_is_invalid_argument_on_both_paths(both_paths):
    for servable in both_paths:
        for garbage in (b"not a tf.Example", b"\xff\xfe\x00broken"):
            with pytest.raises(errors.ServingError) as raised:
                servable.run(SERVING_DEFAULT, {EXAMPLES_INPUT: _array([garbage])}, [OUTPUT_KEY])
            assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT, servable
        with pytest.raises(errors.ServingError) as raised:  # a float fed to a string input
            servable.run(SERVING_DEFAULT, {EXAMPLES_INPUT: np.zeros(2, np.float32)}, [OUTPUT_KEY])
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT, servable


def test_a_malformed_example_is_invalid_argument_and_the_server_goes_on(tiny_model_dir,
                                                                        tmp_path):
    base = str(tmp_path / MODEL_NAME)
    model_fixtures.publish_version(tiny_model_dir, base, 1)
    with running_server(server_options(base)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        try:
            with pytest.raises(grpc.RpcError) as raised:
                client.prediction.Predict(predict_request([b"\xff\x00garbage"]), timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            response = client.prediction.Predict(
                predict_request(serialized_examples(tiny_model_dir)), timeout=10)
            assert tf.make_ndarray(response.outputs[OUTPUT_KEY]).shape == (2,)
        finally:
            client.close()
        servable = server.manager.resolve(model_pb2.ModelSpec(name=MODEL_NAME))
        assert servable.call_path == servables.SESSION


def test_concurrent_calls_on_one_session_each_get_their_own_answer(both_paths, tiny_model_dir):
    session, function = both_paths
    examples = serialized_examples(tiny_model_dir)
    batches = [_array((examples * 20)[index:index + 1 + index % 7]) for index in range(16)]
    expected = [function.run(SERVING_DEFAULT, {EXAMPLES_INPUT: batch}, [OUTPUT_KEY])[OUTPUT_KEY]
                for batch in batches]
    failures, start = [], threading.Barrier(len(batches))

    def call(index):
        start.wait()
        for _ in range(30):
            got = session.run(SERVING_DEFAULT, {EXAMPLES_INPUT: batches[index]}, [OUTPUT_KEY])
            if not np.allclose(got[OUTPUT_KEY], expected[index], rtol=RTOL, atol=ATOL):
                failures.append(index)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures


def test_model_calls_on_the_session_path_are_metered(tiny_model_dir):
    metrics = ServingMetrics()
    servable = servables.load_servable(MODEL_NAME, 7, tiny_model_dir, metrics)
    inputs = {EXAMPLES_INPUT: _array(serialized_examples(tiny_model_dir) * 200)}
    for _ in range(20):
        servable.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY])
    line = next(line for line in metrics.exposition().splitlines()
                if line.startswith(contract.MODEL_CPU_SECONDS) and 'version="7"' in line)
    assert float(line.rsplit(" ", 1)[1]) > 0


def test_unloading_a_version_closes_its_session_once_its_last_request_is_done(tiny_model_dir,
                                                                             tmp_path):
    base = str(tmp_path / MODEL_NAME)
    model_fixtures.publish_version(tiny_model_dir, base, 1)
    manager = ModelManager(loader=servables.load_servable)
    manager.set_config(single_model_config(MODEL_NAME, base))
    in_flight = manager.resolve(model_pb2.ModelSpec(name=MODEL_NAME))
    session = in_flight.session
    model_fixtures.publish_version(tiny_model_dir, base, 2)
    manager.poll()  # latest 1: version 2 loads, version 1 is unloaded
    assert manager.resolve(model_pb2.ModelSpec(name=MODEL_NAME)).version == 2
    # A request that resolved version 1 before the unload still gets its answer.
    assert not session._closed  # pylint: disable=protected-access
    inputs = {EXAMPLES_INPUT: _array(serialized_examples(tiny_model_dir))}
    assert in_flight.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY])[OUTPUT_KEY].shape == (2,)
    del in_flight
    assert session._closed  # pylint: disable=protected-access  # freed without a gc pass
    current = manager.resolve(model_pb2.ModelSpec(name=MODEL_NAME)).session
    manager.stop()
    gc.collect()
    assert current._closed  # pylint: disable=protected-access


def test_close_frees_the_session_and_later_calls_are_unavailable(tiny_model_dir):
    servable = servables.load_servable(MODEL_NAME, 1, tiny_model_dir)
    servable.close()
    assert servable.closed and servable.session._closed  # pylint: disable=protected-access
    with pytest.raises(errors.ServingError) as raised:
        servable.run(SERVING_DEFAULT, {EXAMPLES_INPUT: _array([b""])}, [OUTPUT_KEY])
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def _skip_saver_model(export_dir: str) -> str:
    """A valid SavedModel without a saver_def (SaveOptions(experimental_skip_saver=True)):
    only tf.saved_model.load can restore its variables."""
    model = model_fixtures.TinyFraudModel(bias=0.0)
    tf.saved_model.save(model, export_dir, signatures={SERVING_DEFAULT: model.serve_examples},
                        options=tf.saved_model.SaveOptions(experimental_skip_saver=True))
    return export_dir


def test_a_model_without_a_saver_falls_back_to_the_tf2_path_with_the_reason_logged(
        tiny_model_dir, tmp_path, caplog):
    path = _skip_saver_model(str(tmp_path / "skip-saver"))
    with caplog.at_level(logging.WARNING, logger="serving.servable"):
        servable = servables.load_servable(MODEL_NAME, 3, path)
    assert isinstance(servable, servables.FunctionServable)
    assert "saver_def" in servable.fallback_reason
    assert any("tf2_function path" in record.getMessage() and "saver_def" in record.getMessage()
               for record in caplog.records)
    reference = servables.load_servable(MODEL_NAME, 1, tiny_model_dir)
    inputs = {EXAMPLES_INPUT: _array(serialized_examples(tiny_model_dir))}
    _assert_same(servable.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY]),
                 reference.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY]))


def test_a_tf1_loader_failure_falls_back_to_the_tf2_path(tiny_model_dir, monkeypatch, caplog):
    def broken(path):
        raise tf.errors.InvalidArgumentError(None, None, "cannot import this graph")
    monkeypatch.setattr(servables, "_load_session", broken)
    with caplog.at_level(logging.WARNING, logger="serving.servable"):
        servable = servables.load_servable(MODEL_NAME, 1, tiny_model_dir)
    assert servable.call_path == servables.TF2_FUNCTION
    assert "cannot import this graph" in servable.fallback_reason
    assert "cannot import this graph" in caplog.text
    inputs = {EXAMPLES_INPUT: _array(serialized_examples(tiny_model_dir))}
    assert servable.run(SERVING_DEFAULT, inputs, [OUTPUT_KEY])[OUTPUT_KEY].shape == (2,)


def test_a_model_that_loads_neither_way_is_not_served(tmp_path, caplog):
    """A signature naming a tensor the graph lacks: the TF1 loader's callable fails, so
    does tf.saved_model.load, and the load fails as it did before the session path."""
    path = str(tmp_path / "corrupt")
    os.makedirs(os.path.join(path, "variables"))
    meta_graph = tf.compat.v1.MetaGraphDef()
    meta_graph.meta_info_def.tags.append("serve")
    meta_graph.signature_def[SERVING_DEFAULT].outputs[OUTPUT_KEY].name = "missing:0"
    saved_model = saved_model_pb2.SavedModel(meta_graphs=[meta_graph])
    with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
        handle.write(saved_model.SerializeToString())
    with pytest.raises(errors.ServingError):
        servables.load_servable(MODEL_NAME, 1, path)
    assert "tf2_function path" in caplog.text


def test_the_server_serves_the_call_path_it_is_built_with(tiny_model_dir, tmp_path):
    base = str(tmp_path / MODEL_NAME)
    model_fixtures.publish_version(tiny_model_dir, base, 1)
    with pytest.raises(Exception, match="model_call_path"):
        ModelServer(server_options(base), model_call_path="eager")
    stage_times = StageTimes()
    server = ModelServer(server_options(base), model_call_path=servables.TF2_FUNCTION,
                         stage_times=stage_times)
    server.start()
    try:
        assert server.wait_until_available(60)
        assert server.manager.resolve(model_pb2.ModelSpec(name=MODEL_NAME)).call_path == (
            servables.TF2_FUNCTION)
        client = Client(f"127.0.0.1:{server.port}")
        try:
            client.prediction.Predict(predict_request(serialized_examples(tiny_model_dir)),
                                      timeout=10)
        finally:
            client.close()
    finally:
        server.stop(grace=2.0)
    samples = stage_times.samples()
    assert set(STAGES) == set(samples)
    assert all(len(samples[stage]) == 1 for stage in samples)


def test_riskpipe_serve_takes_the_call_path_as_a_flag(capsys):
    from cli.main import build_parser  # pylint: disable=import-outside-toplevel

    parser = build_parser()
    assert parser.parse_args(["serve"]).model_call_path == servables.SESSION
    args = parser.parse_args(["serve", "--model_call_path", servables.TF2_FUNCTION])
    assert args.model_call_path == servables.TF2_FUNCTION
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--model_call_path", "eager"])
    assert "invalid choice: 'eager'" in capsys.readouterr().err
