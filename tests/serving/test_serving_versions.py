"""Hot loading: version policies, load-before-unload, failed versions, labels, config reloads."""
import os
import shutil
import threading

import grpc
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from google.protobuf import text_format
from tensorflow_serving.apis import (get_model_status_pb2, model_management_pb2, model_pb2,
                                     prediction_log_pb2)
from tensorflow_serving.config import model_server_config_pb2

import model_fixtures
from common.serving_contract import SAVED_MODEL_FILENAME, write_warmup_requests
from serving_helpers import (MODEL_NAME, Client, predict_request, running_server,
                             serialized_examples, server_options, wait_for)

State = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture
def examples(tiny_model_dir):
    return serialized_examples(tiny_model_dir)


@pytest.fixture
def pushed_examples(model_dir):
    return serialized_examples(model_dir)


@pytest.fixture
def publish_tiny(tiny_model_dir):
    """publish_tiny(base_path, version) copies the tiny model in as that version."""
    return lambda base, version, source=tiny_model_dir: model_fixtures.publish_version(
        source, base, version)


def statuses(client: Client) -> dict:
    response = client.model.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name=MODEL_NAME)))
    return {entry.version: entry for entry in response.model_version_status}


def available(client: Client) -> set:
    return {version for version, entry in statuses(client).items()
            if entry.state == State.AVAILABLE}


def served_version(client: Client, examples, **spec) -> int:
    return client.prediction.Predict(predict_request(examples, **spec)).model_spec.version.value


def model_config(base_path: str, policy: str = "", labels: dict = None):
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name=MODEL_NAME, base_path=base_path,
                                                model_platform="tensorflow")
    if policy:
        text_format.Parse(policy, entry.model_version_policy)
    for label, version in (labels or {}).items():
        entry.version_labels[label] = version
    return config


def reload(client: Client, config) -> None:
    client.model.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config))


def test_new_version_replaces_the_old_without_a_failed_request(base_path, publish,
                                                                pushed_examples):
    """The pipeline's pushed model, copied in as versions 1 and 2."""
    examples = pushed_examples
    publish(base_path, 1)
    with running_server(server_options(base_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        seen, failures, stop = [], [], threading.Event()

        def loop():
            for _ in range(20000):  # bounded; stops once version 2 has answered a while
                try:
                    seen.append(served_version(client, examples))
                except grpc.RpcError as err:
                    failures.append(err)
                if stop.is_set() or seen[-50:] == [2] * 50:
                    return

        thread = threading.Thread(target=loop)
        thread.start()
        wait_for(lambda: len(seen) > 20)
        publish(base_path, 2)
        thread.join(timeout=90)
        stop.set()
        assert failures == []
        assert seen[0] == 1 and seen[-1] == 2
        assert seen == sorted(seen), "a request went back to the old version after the swap"
        assert statuses(client)[1].state == State.END
        assert statuses(client)[2].state == State.AVAILABLE
        client.close()


def test_half_written_and_corrupt_versions_are_never_served(base_path, publish_tiny,
                                                            tiny_model_dir,
                                                            examples):
    publish_tiny(base_path, 1)
    with running_server(server_options(base_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        # Mid-copy without saved_model.pb: invisible.
        model_fixtures.write_half_version(tiny_model_dir, base_path, 2, with_saved_model_pb=False)
        # Mid-copy with saved_model.pb but no variables: fails to load, reported.
        partial = model_fixtures.write_half_version(tiny_model_dir, base_path, 3,
                                                    with_saved_model_pb=True)
        failed = wait_for(lambda: statuses(client).get(3))
        wait_for(lambda: statuses(client)[3].state == State.END)
        failed = statuses(client)[3]
        assert failed.status.error_code != 0 and failed.status.error_message
        assert 2 not in statuses(client)
        assert served_version(client, examples) == 1
        assert available(client) == {1}
        with pytest.raises(grpc.RpcError) as raised:
            served_version(client, examples, version=3)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

        # The copy completes: the version is retried and takes over.
        shutil.rmtree(partial)
        shutil.copytree(tiny_model_dir, partial)
        wait_for(lambda: served_version(client, examples) == 3)
        assert available(client) == {3}
        client.close()


def test_corrupt_saved_model_keeps_the_previous_version_serving(base_path, publish_tiny, examples):
    publish_tiny(base_path, 1)
    with running_server(server_options(base_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        corrupt = os.path.join(base_path, "5")
        os.makedirs(corrupt)
        with open(os.path.join(corrupt, "saved_model.pb"), "wb") as handle:
            handle.write(b"\x0a\xff\xff not a SavedModel")
        wait_for(lambda: statuses(client).get(5) and statuses(client)[5].state == State.END)
        assert statuses(client)[5].status.error_code != 0
        assert served_version(client, examples) == 1
        client.close()


def test_failing_warmup_fails_the_load(base_path, publish_tiny, tiny_model_dir, tmp_path, examples):
    publish_tiny(base_path, 1)
    broken = str(tmp_path / "broken")
    shutil.copytree(tiny_model_dir, broken)
    request = predict_request(examples, signature="no_such_signature")
    write_warmup_requests(broken, [prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))])
    with running_server(server_options(base_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        publish_tiny(base_path, 2, broken)
        wait_for(lambda: statuses(client).get(2) and statuses(client)[2].state == State.END)
        assert "Warmup" in statuses(client)[2].status.error_message
        assert served_version(client, examples) == 1
        client.close()


def test_version_policies_latest_all_and_specific(base_path, publish_tiny, examples):
    for version in (1, 2, 3):
        publish_tiny(base_path, version)
    with running_server(server_options(base_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        assert available(client) == {3}  # latest 1 by default
        reload(client, model_config(base_path, "latest { num_versions: 2 }"))
        assert available(client) == {2, 3}
        reload(client, model_config(base_path, "all {}"))
        assert available(client) == {1, 2, 3}
        reload(client, model_config(base_path, "specific { versions: 1 }"))
        assert available(client) == {1}
        assert served_version(client, examples) == 1
        client.close()


def test_labels_may_only_point_at_available_versions(base_path, publish_tiny, examples):
    for version in (1, 2, 3):
        publish_tiny(base_path, version)
    with running_server(server_options(base_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        two_versions = "specific { versions: 1 versions: 2 }"
        reload(client, model_config(base_path, two_versions, {"stable": 1}))
        assert served_version(client, examples, label="stable") == 1

        with pytest.raises(grpc.RpcError) as raised:
            reload(client, model_config(base_path, two_versions, {"stable": 1, "canary": 3}))
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert raised.value.details() == (
            f"Request to assign label to version 3 of model {MODEL_NAME}, which is not "
            f"currently available for inference")
        assert served_version(client, examples, label="stable") == 1
        with pytest.raises(grpc.RpcError) as raised:
            served_version(client, examples, label="canary")
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        reload(client, model_config(base_path, two_versions, {"stable": 1, "canary": 2}))
        assert served_version(client, examples, label="canary") == 2
        response = client.prediction.Predict(predict_request(examples, label="canary"))
        assert response.model_spec.version.value == 2 and not response.model_spec.version_label
        client.close()


def test_model_config_file_is_reread_while_serving(base_path, publish_tiny, examples, tmp_path):
    for version in (1, 2):
        publish_tiny(base_path, version)
    config_file = tmp_path / "models.config"
    two_versions = "specific { versions: 1 versions: 2 }"
    config_file.write_text(text_format.MessageToString(
        model_config(base_path, two_versions, {"stable": 1})))
    options = server_options("", model_config_file=str(config_file))
    with running_server(options) as server:
        client = Client(f"127.0.0.1:{server.port}")
        wait_for(lambda: served_version(client, examples, label="stable") == 1)
        config_file.write_text(text_format.MessageToString(
            model_config(base_path, two_versions, {"stable": 1, "canary": 2})))
        wait_for(lambda: server.manager.labels(MODEL_NAME).get("canary") == 2)
        assert served_version(client, examples, label="canary") == 2
        config_file.write_text("model_config_list { this is not a text proto")
        wait_for(lambda: served_version(client, examples, label="canary") == 2)
        client.close()


def test_health_reports_serving_only_once_a_version_is_loaded(base_path, publish_tiny):
    with running_server(server_options(base_path), wait=False) as server:
        client = Client(f"127.0.0.1:{server.port}")
        health = health_pb2_grpc.HealthStub(client.channel)
        check = lambda: health.Check(health_pb2.HealthCheckRequest(service="")).status  # noqa: E731
        wait_for(lambda: server.manager.model_names() == [MODEL_NAME])
        assert check() == health_pb2.HealthCheckResponse.NOT_SERVING
        publish_tiny(base_path, 1)
        wait_for(lambda: check() == health_pb2.HealthCheckResponse.SERVING)
        client.close()


def _copy_to_uri(source_dir: str, target: str) -> None:
    """Copies a version file by file, saved_model.pb last, as the Pusher writes a bucket."""
    files = [os.path.relpath(os.path.join(root, name), source_dir)
             for root, _dirs, names in os.walk(source_dir) for name in names]
    for relative in sorted(files, key=lambda path: path == SAVED_MODEL_FILENAME):
        tf.io.gfile.makedirs(os.path.dirname(f"{target}/{relative}"))
        tf.io.gfile.copy(os.path.join(source_dir, relative), f"{target}/{relative}")


def test_a_base_path_on_a_uri_file_system_is_polled_and_served(tiny_model_dir, examples):
    # ram:// stands for gs://: both go through TensorFlow's file systems, as
    # tensorflow_model_server reads a bucket. (TF's ram:// file system is
    # process-wide, hence a name of its own.)
    base = f"ram://riskpipe-test-{os.getpid()}/models/fraud"
    _copy_to_uri(tiny_model_dir, f"{base}/3")
    with running_server(server_options(base)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        assert served_version(client, examples) == 3
        _copy_to_uri(tiny_model_dir, f"{base}/4")
        wait_for(lambda: served_version(client, examples) == 4)
        client.close()
