"""The serving contract (common/serving_contract.py) against TensorFlow's own names, and its files.

The contract's names are what tensorflow_model_server and every client of the
TF Serving API expect, so they are checked against TensorFlow's constants
rather than against themselves.
"""
import pytest
import tensorflow as tf
from tensorflow.python.saved_model import constants, signature_constants, tag_constants
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from common import serving_contract as contract


def test_names_are_tensorflow_servings():
    assert contract.SAVED_MODEL_FILENAME == constants.SAVED_MODEL_FILENAME_PB
    assert contract.SERVE_TAG == tag_constants.SERVING
    assert contract.WARMUP_DIRNAME == constants.EXTRA_ASSETS_DIRECTORY
    assert contract.DEFAULT_SIGNATURE == signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    assert contract.PREDICT_METHOD == signature_constants.PREDICT_METHOD_NAME
    assert contract.CLASSIFY_METHOD == signature_constants.CLASSIFY_METHOD_NAME
    assert contract.REGRESS_METHOD == signature_constants.REGRESS_METHOD_NAME
    assert contract.CLASSIFY_INPUTS == signature_constants.CLASSIFY_INPUTS
    assert contract.CLASSIFY_OUTPUT_CLASSES == signature_constants.CLASSIFY_OUTPUT_CLASSES
    assert contract.CLASSIFY_OUTPUT_SCORES == signature_constants.CLASSIFY_OUTPUT_SCORES
    assert contract.REGRESS_INPUTS == signature_constants.REGRESS_INPUTS
    assert contract.REGRESS_OUTPUTS == signature_constants.REGRESS_OUTPUTS


def test_a_version_is_complete_once_its_saved_model_pb_is_there(tmp_path):
    version = tmp_path / "7"
    (version / "variables").mkdir(parents=True)
    assert not contract.is_complete_version(str(version))
    (version / contract.SAVED_MODEL_FILENAME).write_bytes(b"")
    assert contract.is_complete_version(str(version))
    assert contract.complete_versions(str(tmp_path)) == {7: str(version)}
    assert contract.complete_versions(str(tmp_path / "absent")) == {}


def _predict_log(batch: int) -> prediction_log_pb2.PredictionLog:
    request = predict_pb2.PredictRequest()
    request.inputs[contract.EXAMPLES_INPUT].CopyFrom(
        tf.make_tensor_proto([b"x"] * batch, dtype=tf.string))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
        request=request))


def test_warmup_records_round_trip_and_replay_by_kind(tmp_path):
    logs = [_predict_log(batch) for batch in (1, 3)]
    path = contract.write_warmup_requests(str(tmp_path), logs)
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    read = contract.read_warmup_requests(str(tmp_path))
    assert read == logs
    batches = []
    assert contract.replay_warmup(read, {"predict_log": lambda request: batches.append(
        len(request.inputs[contract.EXAMPLES_INPUT].string_val))}) == 2
    assert batches == [1, 3]
    with pytest.raises(ValueError, match="Unsupported log_type for warmup: predict_log"):
        contract.replay_warmup(read, {"classify_log": lambda request: None})
    assert contract.read_warmup_requests(str(tmp_path / "none")) == []


def test_more_warmup_records_than_a_server_replays_are_refused(tmp_path):
    too_many = [_predict_log(1)] * (contract.MAX_WARMUP_RECORDS + 1)
    with pytest.raises(ValueError, match="at most 1000"):
        contract.write_warmup_requests(str(tmp_path / "written"), too_many)
    path = tmp_path / "copied" / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in too_many:
            writer.write(log.SerializeToString())
    with pytest.raises(ValueError, match="exceeds the maximum"):
        contract.read_warmup_requests(str(tmp_path / "copied"))
