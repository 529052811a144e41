"""ServerOptions: tensorflow_model_server's flags, with the same names and defaults."""
import dataclasses
from typing import List, Tuple

from common.errors import UsageError
from common.serving_contract import MAX_MESSAGE_BYTES


# How a model version's signatures are called (serving/servable.py explains
# both and why "session" is the default); here so that the CLI can offer the
# choice without importing TensorFlow.
SESSION = "session"
TF2_FUNCTION = "tf2_function"
MODEL_CALL_PATHS = (SESSION, TF2_FUNCTION)
DEFAULT_MODEL_CALL_PATH = SESSION


@dataclasses.dataclass
class ServerOptions:
    port: int = 8500
    rest_api_port: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0.0
    file_system_poll_wait_seconds: float = 1.0
    ssl_config_file: str = ""
    monitoring_config_file: str = ""
    enable_batching: bool = False
    batching_parameters_file: str = ""
    enable_model_warmup: bool = True
    allow_version_labels_for_unavailable_models: bool = False
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 16
    # riskpipe additions (tensorflow_model_server has no such flags).
    bind_address: str = "0.0.0.0"
    shutdown_grace_seconds: float = 10.0
    # Input feature statistics from every Nth transaction a version answers: reading
    # every tf.Example would cost more CPU than the model's call on it (README, serve).
    feature_stats_sample_every: int = 100

    def validate(self) -> None:
        if not self.model_base_path and not self.model_config_file:
            raise UsageError("--model_base_path or --model_config_file is required "
                             "(both are empty)")
        for name in ("port", "rest_api_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise UsageError(f"--{name}={value}: not a port number")
        for name in ("grpc_max_threads", "feature_stats_sample_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name}={getattr(self, name)}: must be >= 1")
        if self.batching_parameters_file and not self.enable_batching:
            raise UsageError("--batching_parameters_file requires --enable_batching")
        self.channel_arguments()

    def channel_arguments(self) -> List[Tuple[str, object]]:
        """gRPC server arguments: riskpipe's defaults, then --grpc_channel_arguments."""
        arguments = {
            "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
            "grpc.max_send_message_length": -1,
            # Never share a port with another server silently.
            "grpc.so_reuseport": 0,
        }
        for item in filter(None, (part.strip() for part in self.grpc_channel_arguments.split(","))):
            key, separator, value = item.partition("=")
            if not separator or not key:
                raise UsageError(f"--grpc_channel_arguments: '{item}' is not key=value")
            arguments[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
        return list(arguments.items())
