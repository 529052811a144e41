"""TF Serving's SSLConfig, MonitoringConfig and BatchingParameters, built at runtime.

The tensorflow-serving-api wheel ships the API protos but not these three
config protos, so they are declared here with TF Serving's package, field names
and field numbers (tensorflow_serving/config/ssl_config.proto,
tensorflow_serving/config/monitoring_config.proto and
tensorflow_serving/servables/tensorflow/session_bundle_config.proto) and built
into a private descriptor pool. The files riskpipe reads are therefore the same
text protos tensorflow_model_server reads.
"""
import functools
import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

from common.errors import UsageError

_CONFIG_PROTO = """
name: "riskpipe/tf_serving_config.proto"
package: "tensorflow.serving"
dependency: "google/protobuf/wrappers.proto"
syntax: "proto3"
message_type {
  name: "SSLConfig"
  field { name: "server_key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "server_cert" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "custom_ca" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "client_verify" number: 4 label: LABEL_OPTIONAL type: TYPE_BOOL }
}
message_type {
  name: "PrometheusConfig"
  field { name: "enable" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "path" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
}
message_type {
  name: "MonitoringConfig"
  field {
    name: "prometheus_config" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
    type_name: ".tensorflow.serving.PrometheusConfig"
  }
}
message_type {
  name: "BatchingParameters"
  field { name: "max_batch_size" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
  field { name: "batch_timeout_micros" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
  field { name: "max_enqueued_batches" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
  field { name: "num_batch_threads" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
  field { name: "thread_pool_name" number: 5 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.StringValue" }
  field { name: "allowed_batch_sizes" number: 6 label: LABEL_REPEATED type: TYPE_INT64 }
  field { name: "pad_variable_length_inputs" number: 7 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "enable_large_batch_splitting" number: 8 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.BoolValue" }
  field { name: "max_execution_batch_size" number: 9 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Int64Value" }
}
"""

# TF Serving's default Prometheus path (PrometheusExporter::kPrometheusPath).
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@functools.lru_cache(maxsize=None)
def _message_classes() -> dict:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    config_file = text_format.Parse(_CONFIG_PROTO, descriptor_pb2.FileDescriptorProto())
    pool.Add(config_file)
    factory = message_factory.MessageFactory(pool)
    names = ("SSLConfig", "PrometheusConfig", "MonitoringConfig", "BatchingParameters")
    return {
        name: factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in names
    }


def ssl_config_class():
    """The message class of tensorflow.serving.SSLConfig."""
    return _message_classes()["SSLConfig"]


def monitoring_config_class():
    """The message class of tensorflow.serving.MonitoringConfig."""
    return _message_classes()["MonitoringConfig"]


def batching_parameters_class():
    """The message class of tensorflow.serving.BatchingParameters."""
    return _message_classes()["BatchingParameters"]


def parse_text_proto(text: str, message_class, source: str):
    """Parses a text proto; a syntax error or unknown field names `source` and the line."""
    message = message_class()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as err:
        raise UsageError(f"{source}: not a valid {message.DESCRIPTOR.name} text proto: {err}") from err
    return message


def read_text_proto(path: str, message_class):
    """Reads a text-format config file, as tensorflow_model_server's flags name them."""
    if not os.path.isfile(path):
        raise UsageError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as handle:
        return parse_text_proto(handle.read(), message_class, path)
