"""`riskpipe serve` and `riskpipe certs`.

`serve` takes tensorflow_model_server's flags, with the same names, meanings and
defaults, so a deployment can swap the two with the same config files.
"""
import argparse
import logging

from common import runtime
from common.errors import UsageError

# tensorflow_model_server spells booleans --flag=true / --flag=false.
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


def _add_bool(parser, name: str, default: bool, help_text: str) -> None:
    parser.add_argument(f"--{name}", type=_bool, nargs="?", const=True, default=default,
                        metavar="true|false", help=f"{help_text} (default: {str(default).lower()})")


def register(subparsers) -> None:
    _register_serve(subparsers)
    _register_certs(subparsers)


def _register_serve(subparsers) -> None:
    from serving.options import DEFAULT_MODEL_CALL_PATH, MODEL_CALL_PATHS, ServerOptions
    defaults = ServerOptions()
    parser = subparsers.add_parser(
        "serve", help="run the TF-Serving-compatible gRPC model server",
        description="A model server speaking TensorFlow Serving's gRPC API (PredictionService, "
                    "ModelService, grpc.health.v1) with tensorflow_model_server's flags and "
                    "config files. Stops cleanly on SIGTERM.")
    add = parser.add_argument
    add("--port", type=int, default=defaults.port, help="gRPC port (default: 8500)")
    add("--rest_api_port", type=int, default=defaults.rest_api_port,
        help="HTTP port for REST predict/status and Prometheus metrics; 0 disables it")
    add("--model_name", default=defaults.model_name,
        help="name of the model served from --model_base_path (default: default)")
    add("--model_base_path", default=defaults.model_base_path,
        help="directory of numeric version subdirectories, for a single model")
    add("--model_config_file", default=defaults.model_config_file,
        help="a ModelServerConfig text proto (model_config_list); overrides --model_name and "
             "--model_base_path")
    add("--model_config_file_poll_wait_seconds", type=float,
        default=defaults.model_config_file_poll_wait_seconds,
        help="re-read --model_config_file this often; 0 reads it once (default: 0)")
    add("--file_system_poll_wait_seconds", type=float,
        default=defaults.file_system_poll_wait_seconds,
        help="poll the model base paths for new versions this often; 0 polls once at start "
             "(default: 1)")
    add("--ssl_config_file", default=defaults.ssl_config_file,
        help="an SSLConfig text proto (PEM contents; client_verify: true for mutual TLS); "
             "plaintext without it")
    add("--monitoring_config_file", default=defaults.monitoring_config_file,
        help="a MonitoringConfig text proto; Prometheus metrics are served on --rest_api_port")
    _add_bool(parser, "enable_batching", defaults.enable_batching,
              "merge concurrent requests into one model call")
    add("--batching_parameters_file", default=defaults.batching_parameters_file,
        help="a BatchingParameters text proto (max_batch_size, batch_timeout_micros, ...)")
    _add_bool(parser, "enable_model_warmup", defaults.enable_model_warmup,
              "replay assets.extra/tf_serving_warmup_requests before a version is AVAILABLE")
    _add_bool(parser, "allow_version_labels_for_unavailable_models",
              defaults.allow_version_labels_for_unavailable_models,
              "let a version label point at a version that is not AVAILABLE yet")
    add("--grpc_channel_arguments", default=defaults.grpc_channel_arguments,
        help="comma-separated gRPC server arguments, e.g. "
             "grpc.max_receive_message_length=134217728")
    add("--grpc_max_threads", type=int, default=defaults.grpc_max_threads,
        help="threads for ModelService, metadata and health RPCs, and again for large "
             "model calls without batching; inference RPCs run on an event loop (default: 16)")
    add("--bind_address", default=defaults.bind_address,
        help="address the gRPC and REST ports listen on (riskpipe; default: 0.0.0.0)")
    add("--shutdown_grace_seconds", type=float, default=defaults.shutdown_grace_seconds,
        help="on SIGTERM, how long in-flight requests may take to finish (riskpipe; default: 10)")
    add("--feature_stats_sample_every", type=int, default=defaults.feature_stats_sample_every,
        help="export input feature statistics from every Nth transaction a version answers; "
             "1 reads every one, at ~20%% more CPU per transaction (riskpipe; default: 100)")
    add("--model_call_path", choices=MODEL_CALL_PATHS, default=DEFAULT_MODEL_CALL_PATH,
        help="how a model version is called: a graph-mode session callable run in the "
             "request's thread, the cheapest measured, or tf.saved_model.load's concrete "
             "functions (riskpipe; default: session)")
    parser.set_defaults(func=_serve)


def _register_certs(subparsers) -> None:
    parser = subparsers.add_parser(
        "certs", help="make a local CA, server and client certificates and ssl_config files",
        description="Writes ca.pem, server.pem/.key, client.pem/.key and the ssl_config files "
                    "that `riskpipe serve --ssl_config_file` (and tensorflow_model_server) read: "
                    "ssl_config.pbtxt (TLS), ssl_config_mtls.pbtxt (mutual TLS) and "
                    "client_ssl_config.pbtxt (for clients). For local use only.")
    parser.add_argument("--out", required=True, help="directory to write into")
    parser.add_argument("--hostname", action="append", default=None,
                        help="a DNS name or IP the server certificate is valid for; repeatable "
                             "(default: localhost, 127.0.0.1, ::1)")
    parser.add_argument("--days", type=int, default=365, help="validity in days (default: 365)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.set_defaults(func=_certs)


def _options(args):
    import dataclasses

    from serving.options import ServerOptions
    names = {field.name for field in dataclasses.fields(ServerOptions)}
    return ServerOptions(**{name: getattr(args, name) for name in names})


def _serve(args) -> int:
    import signal
    import threading

    runtime.use_eigen_kernels()  # before serving.server imports TensorFlow
    from serving.server import ModelServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = ModelServer(_options(args), model_call_path=args.model_call_path)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"riskpipe serve: gRPC on port {server.port}"
          + (f", REST on port {server.rest_port}" if server.rest_port else ""), flush=True)
    while not stop.wait(1.0):
        pass
    logging.getLogger(__name__).info("Shutting down: finishing in-flight requests")
    server.stop(args.shutdown_grace_seconds)
    return 0


def _certs(args) -> int:
    from serving import certs
    if args.days < 1:
        raise UsageError(f"--days={args.days}: must be >= 1")
    files = certs.make_certificates(args.out, args.hostname or certs.DEFAULT_HOSTNAMES,
                                    days=args.days, overwrite=args.force)
    print(f"wrote {len(files.all_paths())} files to {files.out_dir}:")
    print(f"  server, TLS:        --ssl_config_file={files.server_ssl_config}")
    print(f"  server, mutual TLS: --ssl_config_file={files.server_mtls_ssl_config}")
    print(f"  clients:            {files.client_ssl_config} (CA {files.ca_cert}, "
          f"certificate {files.client_cert})")
    return 0
