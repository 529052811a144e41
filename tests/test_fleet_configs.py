"""`riskpipe serve` accepts the fleet's config files and flags (kubeflow/config, the Deployment).

The fleet runs tensorflow/serving; `riskpipe serve` claims to be a drop-in with
the same flags and files. Here the Deployment's own arguments are parsed by the
riskpipe CLI, with the mounted paths pointing at kubeflow/config's files, and a
ModelServer is built from them: that reads and validates the model config, the
ssl_config, the monitoring config and the batching parameters, as `riskpipe
serve` does before it binds a port.
"""
import dataclasses
import os
import re
import shutil

import pytest
import yaml
from google.protobuf import text_format

from cli import main as cli
from common.errors import UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "kubeflow", "config")
DEPLOYMENT = os.path.join(REPO, "kubeflow", "manifests", "deployment.yaml")
# Flags of tensorflow_model_server the Deployment sets for TensorFlow's own
# thread pools; riskpipe serve has no such pools (see deployment.yaml).
TF_SERVING_ONLY_FLAGS = ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism")
PLACEHOLDER = re.compile(r"\A-----BEGIN ([A-Z ]+)-----\nREPLACE_WITH_[A-Z_]+\n-----END \1-----\n\Z")


def _deployment_args():
    with open(DEPLOYMENT, encoding="utf-8") as f:
        deployment = yaml.safe_load(f)
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def _mounted_files(tmp_path, ssl_config_text):
    """The files the Deployment mounts, by in-pod path, as local copies."""
    files = {}
    for name in ("models.config", "monitoring.config", "batching.config"):
        files[f"/etc/riskpipe/{'models' if name == 'models.config' else 'serving'}/{name}"] = \
            shutil.copy(os.path.join(CONFIG, name), tmp_path / name)
    ssl_config = tmp_path / "ssl_config.pbtxt"
    ssl_config.write_text(ssl_config_text)
    files["/etc/riskpipe/tls/ssl_config.pbtxt"] = str(ssl_config)
    return files


def _filled_ssl_config():
    """kubeflow/config/ssl_config.template with a real CA, server key and certificate."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    from serving import certs, config_protos  # pylint: disable=import-outside-toplevel

    with open(os.path.join(CONFIG, "ssl_config.template"), encoding="utf-8") as f:
        template = config_protos.parse_text_proto(f.read(), config_protos.ssl_config_class(),
                                                  "ssl_config.template")
    ca_cert, ca_key = certs.make_ca()
    server_cert, server_key = certs.issue_certificate(
        ca_cert, ca_key, "riskpipe model server",
        ["riskpipe-serving.riskpipe.svc.cluster.local"], client=False)
    pem = serialization.Encoding.PEM
    real = {
        "server_key": server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()).decode(),
        "server_cert": server_cert.public_bytes(pem).decode(),
        "custom_ca": ca_cert.public_bytes(pem).decode(),
    }
    for field, value in real.items():
        placeholder = getattr(template, field)
        kind = PLACEHOLDER.match(placeholder).group(1)
        assert value.startswith(f"-----BEGIN {kind}-----"), field
        setattr(template, field, value)
    return text_format.MessageToString(template)


def _serve_args(files):
    args = []
    for arg in _deployment_args():
        name, value = arg[2:].split("=", 1)
        if name in TF_SERVING_ONLY_FLAGS:
            continue
        args.append(f"--{name}={files.get(value, value)}")
    return args


def _server_options(args):
    from serving.options import ServerOptions  # pylint: disable=import-outside-toplevel

    parsed = cli.build_parser().parse_args(["serve"] + args)
    return ServerOptions(**{field.name: getattr(parsed, field.name)
                            for field in dataclasses.fields(ServerOptions)})


def test_ssl_config_template_has_the_fields_tf_serving_reads():
    from serving import config_protos  # pylint: disable=import-outside-toplevel

    with open(os.path.join(CONFIG, "ssl_config.template"), encoding="utf-8") as f:
        template = config_protos.parse_text_proto(f.read(), config_protos.ssl_config_class(),
                                                  "ssl_config.template")
    assert template.client_verify, "the fleet demands client certificates (mutual TLS)"
    for field in ("server_key", "server_cert", "custom_ca"):
        assert PLACEHOLDER.match(getattr(template, field)), field


def test_riskpipe_serve_accepts_the_deployments_flags_and_files(tmp_path):
    from serving.server import ModelServer  # pylint: disable=import-outside-toplevel

    files = _mounted_files(tmp_path, _filled_ssl_config())
    options = _server_options(_serve_args(files))
    assert options.ssl_config_file == files["/etc/riskpipe/tls/ssl_config.pbtxt"]
    assert options.enable_batching and options.model_config_file_poll_wait_seconds == 30
    # Reads and validates every file; binds nothing.
    ModelServer(options)


def test_the_unfilled_template_holds_no_usable_key(tmp_path):
    from cryptography.hazmat.primitives.serialization import (  # pylint: disable=import-outside-toplevel
        load_pem_private_key)

    with open(os.path.join(CONFIG, "ssl_config.template"), encoding="utf-8") as f:
        template_text = f.read()
    files = _mounted_files(tmp_path, template_text)
    options = _server_options(_serve_args(files))
    from serving import tls  # pylint: disable=import-outside-toplevel

    config = tls.load_ssl_config(options.ssl_config_file)
    with pytest.raises(ValueError):
        load_pem_private_key(config.server_key.encode(), password=None)


def test_batching_parameters_are_what_riskpipe_serve_batches_with():
    from serving import config_protos  # pylint: disable=import-outside-toplevel
    from serving.batching import BatchingOptions  # pylint: disable=import-outside-toplevel

    path = os.path.join(CONFIG, "batching.config")
    params = config_protos.read_text_proto(path, config_protos.batching_parameters_class())
    options = BatchingOptions.from_proto(params, path)
    assert options.max_batch_size >= 64 and 0 < options.batch_timeout_micros <= 10_000


def test_monitoring_serves_prometheus_where_the_pods_are_scraped():
    from serving import config_protos  # pylint: disable=import-outside-toplevel

    config = config_protos.read_text_proto(os.path.join(CONFIG, "monitoring.config"),
                                           config_protos.monitoring_config_class())
    with open(DEPLOYMENT, encoding="utf-8") as f:
        annotations = yaml.safe_load(f)["spec"]["template"]["metadata"]["annotations"]
    assert config.prometheus_config.enable
    assert annotations["prometheus.io/path"] == config.prometheus_config.path


def test_model_config_and_routing_file_are_in_the_form_riskpipe_rollout_writes():
    from engine.rollout.model_config import format_config, read_config  # pylint: disable=import-outside-toplevel
    from engine.routing import (  # pylint: disable=import-outside-toplevel
        NO_CANARY, format_routing, read_routing)

    config_path = os.path.join(CONFIG, "models.config")
    routing_path = os.path.join(CONFIG, "models.config.routing.json")
    config = read_config(config_path)
    routing = read_routing(routing_path)
    # So a rollout's commit shows only what it changed.
    with open(config_path, encoding="utf-8") as f:
        assert f.read() == format_config(config)
    with open(routing_path, encoding="utf-8") as f:
        assert f.read() == format_routing(routing)
    for model in config.model_config_list.config:
        labels = dict(model.version_labels)
        assert "stable" in labels and set(labels) <= {"stable", "canary"}
        assert set(labels.values()) <= set(model.model_version_policy.specific.versions)
        assert routing.get(model.name, NO_CANARY).canary_version == labels.get("canary")


def test_a_misspelled_field_in_a_fleet_config_is_refused(tmp_path):
    from serving import config_protos  # pylint: disable=import-outside-toplevel

    broken = tmp_path / "batching.config"
    broken.write_text("max_batch_sise { value: 256 }\n")
    with pytest.raises(UsageError, match="batching.config"):
        config_protos.read_text_proto(str(broken), config_protos.batching_parameters_class())


# --- kubeflow/rollout.sh, with kubectl and riskpipe stood in for -----------------------

FAKE_KUBECTL = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case " $* " in
  *" get pods "*) printf 'riskpipe-serving-a\\nriskpipe-serving-b\\n' ;;
  *" port-forward "*)
    mapping=${@: -1}
    exec "$FAKE_PYTHON" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' "${mapping%%:*}" ;;
  *" create configmap "*)
    for arg in "$@"; do
      case $arg in --from-file=*) source=${arg#--from-file=}; echo "== ${source%%=*}"; cat "${source#*=}" ;; esac
    done ;;
  *" label --local "*) cat ;;
  *" apply -f - "*) { echo "-- applied"; cat; } >> "$FAKE_APPLIED" ;;
esac
"""

# Edits the model config, waits until the edit reached the ConfigMap (as a
# rollout step waits for the fleet), edits it again and exits with FAKE_EXIT; a
# failing step puts the original file back first.
FAKE_RISKPIPE = """#!/usr/bin/env bash
echo "$*" > "$FAKE_RISKPIPE_ARGS"
while [ $# -gt 0 ]; do [ "$1" = "--model-config" ] && config=$2; shift; done
cp "$config" "$config.orig"
echo "# step 1" >> "$config"
for attempt in $(seq 1 600); do
  grep -q "# step 1" "$FAKE_APPLIED" 2>/dev/null && break
  sleep 0.1
done
echo "# step 2" >> "$config"
if [ "${FAKE_EXIT:-0}" != 0 ]; then cp "$config.orig" "$config"; fi
exit "${FAKE_EXIT:-0}"
"""


def _free_port_pair():
    import socket  # pylint: disable=import-outside-toplevel

    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


def _run_rollout_script(tmp_path, fake_exit):
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubectl", FAKE_KUBECTL), ("riskpipe", FAKE_RISKPIPE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    model_config = tmp_path / "models.config"
    shutil.copy(os.path.join(CONFIG, "models.config"), model_config)
    shutil.copy(os.path.join(CONFIG, "models.config.routing.json"),
                tmp_path / "models.config.routing.json")
    (tmp_path / "client_ssl_config.pbtxt").write_text("custom_ca: \"\"\n")
    port = _free_port_pair()
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               FAKE_LOG=str(tmp_path / "kubectl.log"), FAKE_APPLIED=str(tmp_path / "applied"),
               FAKE_RISKPIPE_ARGS=str(tmp_path / "riskpipe.args"), FAKE_PYTHON=sys.executable,
               FAKE_EXIT=str(fake_exit), MODEL_CONFIG=str(model_config),
               CLIENT_SSL_CONFIG=str(tmp_path / "client_ssl_config.pbtxt"),
               LOCAL_PORT_BASE=str(port))
    result = subprocess.run(["bash", os.path.join(REPO, "kubeflow", "rollout.sh"), "stage", "42"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    applied = (tmp_path / "applied").read_text().split("-- applied\n")[1:]
    return result, port, model_config.read_text(), applied


def _port_is_open(port):
    import socket  # pylint: disable=import-outside-toplevel

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_rollout_script_drives_every_pod_and_publishes_the_final_config(tmp_path):
    result, port, final_config, applied = _run_rollout_script(tmp_path, fake_exit=0)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "riskpipe.args").read_text().split()
    assert args[:3] == ["rollout", "stage", "42"]
    options = dict(zip(args[3::2], args[4::2]))
    assert options["--server"] == f"localhost:{port},localhost:{port + 1}"
    assert options["--tls-server-name"] == "riskpipe-serving.riskpipe.svc.cluster.local"
    # Mounted ConfigMaps take up to a minute to change: wait and keep routing long enough.
    assert float(options["--timeout"]) >= 120 and float(options["--client-grace"]) >= 60
    assert "# step 2" in final_config
    assert "# step 1" in applied[0] and "# step 2" not in applied[0]
    assert applied[-1] == (
        f"== models.config\n{final_config}== models.config.routing.json\n"
        + (tmp_path / "models.config.routing.json").read_text())
    assert not _port_is_open(port) and not _port_is_open(port + 1)


def test_rollout_script_fails_with_the_step_and_publishes_the_restored_config(tmp_path):
    result, port, final_config, applied = _run_rollout_script(tmp_path, fake_exit=3)
    assert result.returncode == 3
    with open(os.path.join(CONFIG, "models.config"), encoding="utf-8") as f:
        assert final_config == f.read()
    assert "# step 1" in applied[0]
    assert applied[-1].startswith(f"== models.config\n{final_config}==")
    assert not _port_is_open(port)
