"""`riskpipe compile`: the committed Kubeflow spec is current and holds the whole pipeline.

The spec is recompiled through the CLI into a temporary file and compared with
kubeflow/pipeline.json byte for byte; then it is parsed with the Kubeflow
pipeline-spec protos and every node of create_pipeline is looked up in it:
its task, its image, its executor class, its inputs and the settings users
rely on (data root, schema, user-module functions, push destination), and the
labels that attribute its cost (the pod labels of the .yaml's PlatformSpec, the
PipelineJob's labels).
"""
import dataclasses
import json
import os
import re

import pytest
import yaml
from google.protobuf import json_format

from cli import main as cli
from common.errors import UsageError
from common.files import atomic_write_text
from pipeline import kubeflow_runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(REPO, "kubeflow", "pipeline.json")
CONFIG = os.path.join(REPO, "kubeflow", "config", "pipeline.yaml")
BEAM_CONFIGS = {
    "flink": os.path.join(REPO, "kubeflow", "config", "beam", "flink.yaml"),
    "spark": os.path.join(REPO, "kubeflow", "config", "beam", "spark.yaml"),
}
RECOMPILE = "riskpipe compile --output kubeflow/pipeline.json (from the repository root)"
# Label syntax: Kubernetes label values; GCP label keys and values.
KUBERNETES_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
GCP_LABEL_KEY = re.compile(r"[a-z][-_a-z0-9]{0,62}")
GCP_LABEL_VALUE = re.compile(r"[-_a-z0-9]{0,63}")


@pytest.fixture(scope="module")
def fresh_json(tmp_path_factory):
    output = str(tmp_path_factory.mktemp("compile") / "pipeline.json")
    assert cli.main(["compile", "--config", CONFIG, "--output", output]) == 0
    with open(output, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def configs():
    return kubeflow_runner.load_compile_config([CONFIG])


@pytest.fixture(scope="module")
def job(fresh_json):
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=import-outside-toplevel

    data = json.loads(fresh_json)
    # Unknown fields fail the parse: the file is a PipelineJob as Kubeflow reads it.
    parsed = json_format.ParseDict(data, pipeline_spec_pb2.PipelineJob())
    return data, parsed


@pytest.fixture(scope="module")
def spec(job):
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=import-outside-toplevel

    data, _ = job
    return json_format.ParseDict(data["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())


@pytest.fixture(scope="module")
def tfx_pipeline(configs):
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel

    config, _ = configs
    return create_pipeline(config)


def test_committed_spec_is_the_current_compile(fresh_json):
    with open(COMMITTED, encoding="utf-8") as f:
        committed = f.read()
    assert committed == fresh_json, f"kubeflow/pipeline.json is stale: run {RECOMPILE}"


def test_spec_carries_the_pipeline_root_and_name(job, spec, configs):
    config, kubeflow_config = configs
    _, parsed = job
    assert parsed.runtime_config.gcs_output_directory == config.pipeline_root
    assert spec.default_pipeline_root == config.pipeline_root
    assert spec.pipeline_info.name == config.pipeline_name
    assert parsed.display_name == kubeflow_config.display_name


def _executor(spec, task_name):
    component = spec.components[spec.root.dag.tasks[task_name].component_ref.name]
    return spec.deployment_spec.fields["executors"].struct_value.fields[component.executor_label]


def _container_args(executor):
    container = executor.struct_value.fields["container"].struct_value.fields
    return (container["image"].string_value,
            [value.string_value for value in container["args"].list_value.values])


def _components(tfx_pipeline):
    from tfx.dsl.components.base import base_component  # pylint: disable=import-outside-toplevel

    return [node for node in tfx_pipeline.components
            if isinstance(node, base_component.BaseComponent)]


def test_every_component_runs_its_executor_in_the_configured_image(spec, tfx_pipeline, configs):
    _, kubeflow_config = configs
    components = _components(tfx_pipeline)
    assert len(components) >= 9
    for node in components:
        assert node.id in spec.root.dag.tasks, f"{node.id} is missing from the spec"
        image, args = _container_args(_executor(spec, node.id))
        assert image == kubeflow_config.image, node.id
        executor_class = node.executor_spec.executor_class
        class_path = f"{executor_class.__module__}.{executor_class.__name__}"
        assert args[args.index("--executor_class_path") + 1] == class_path, node.id


def test_every_resolver_node_is_a_task(spec, tfx_pipeline):
    components = {node.id for node in _components(tfx_pipeline)}
    for node in tfx_pipeline.components:
        if node.id not in components:
            assert any(task == node.id or task.startswith(node.id + "-")
                       for task in spec.root.dag.tasks), node.id


def test_every_input_comes_from_its_producer(spec, tfx_pipeline):
    for node in _components(tfx_pipeline):
        task = spec.root.dag.tasks[node.id]
        artifacts = task.inputs.artifacts
        assert set(artifacts) == set(node.inputs), node.id
        for key, channel in node.inputs.items():
            producer = artifacts[key].task_output_artifact.producer_task
            assert producer == channel.producer_component_id or producer.startswith(
                channel.producer_component_id + "-"), f"{node.id}.{key}"
            assert artifacts[key].task_output_artifact.output_artifact_key == channel.output_key


def test_settings_users_rely_on_reach_the_components(spec, configs):
    config, _ = configs

    def parameter(task, name):
        value = spec.root.dag.tasks[task].inputs.parameters[name].runtime_value.constant_value
        return value.string_value

    assert parameter("FeatureGen", "input_base") == config.data_root
    assert parameter("ImportSchemaGen", "schema_file") == config.schema_path
    assert parameter("Transform", "preprocessing_fn") == "components.preprocessing.preprocessing_fn"
    assert parameter("Trainer", "run_fn") == "components.trainer.run_fn"
    push = json.loads(parameter("Pusher", "push_destination"))
    assert push["filesystem"]["base_directory"] == f"{config.serving_root}/{config.model_name}"


def test_beam_options_reach_every_beam_component(spec, tfx_pipeline, configs):
    from tfx.dsl.components.base import base_beam_component  # pylint: disable=import-outside-toplevel

    config, _ = configs
    beam_nodes = [n for n in _components(tfx_pipeline)
                  if isinstance(n, base_beam_component.BaseBeamComponent)]
    assert {"FeatureGen", "StatisticsGen", "Transform", "Evaluator"} <= {n.id for n in beam_nodes}
    for node in beam_nodes:
        _, args = _container_args(_executor(spec, node.id))
        for beam_arg in config.beam_args:
            assert beam_arg in args, f"{node.id}: {beam_arg}"


@pytest.fixture(scope="module")
def yaml_documents(job, tmp_path_factory):
    data, _ = job
    output = str(tmp_path_factory.mktemp("compile-yaml") / "pipeline.yaml")
    atomic_write_text(output, kubeflow_runner.render(data, output))
    with open(output, encoding="utf-8") as f:
        return list(yaml.safe_load_all(f))


def test_yaml_output_is_the_pipeline_spec_the_kubeflow_api_server_uploads(job, yaml_documents):
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=import-outside-toplevel

    data, _ = job
    # The PipelineSpec first, then the PlatformSpec: the KFP SDK compiler's layout.
    assert len(yaml_documents) == 2
    parsed = json_format.ParseDict(yaml_documents[0], pipeline_spec_pb2.PipelineSpec())
    # What the API server checks to accept a v2 spec.
    assert parsed.pipeline_info.name and parsed.root.dag.tasks
    assert parsed.default_pipeline_root == data["pipelineSpec"]["defaultPipelineRoot"]
    platform = json_format.ParseDict(yaml_documents[1], pipeline_spec_pb2.PlatformSpec())
    assert list(platform.platforms) == ["kubernetes"]


def _pod_labels(yaml_documents):
    """Executor label -> the labels the Kubernetes PlatformSpec gives its pod."""
    executors = yaml_documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return {label: config["podMetadata"]["labels"] for label, config in executors.items()}


def test_every_component_pod_is_labelled_with_its_node_and_pipeline(
        spec, yaml_documents, tfx_pipeline, configs):
    config, _ = configs
    pod_labels = _pod_labels(yaml_documents)
    components = _components(tfx_pipeline)
    for node in components:
        component = spec.components[spec.root.dag.tasks[node.id].component_ref.name]
        assert pod_labels[component.executor_label] == {
            kubeflow_runner.COMPONENT_LABEL: node.id,
            kubeflow_runner.PIPELINE_LABEL: config.pipeline_name,
        }, node.id
    # Only containers run in pods: the resolvers' metadata queries get no labels.
    assert len(pod_labels) == len(components)
    for labels in pod_labels.values():
        for value in labels.values():
            assert KUBERNETES_LABEL_VALUE.fullmatch(value), value


def test_the_pipeline_job_carries_a_gcp_pipeline_label(job, configs):
    config, _ = configs
    _, parsed = job
    assert parsed.labels[kubeflow_runner.JOB_PIPELINE_LABEL] == config.pipeline_name
    # Vertex refuses the job when any label breaks GCP's rules, TFX's included.
    for key, value in parsed.labels.items():
        assert GCP_LABEL_KEY.fullmatch(key) and GCP_LABEL_VALUE.fullmatch(value), key


# --- configuration and flags (no compile) ----------------------------------------------


def _unknown_beam_options(beam_args):
    from apache_beam.options.pipeline_options import (  # pylint: disable=import-outside-toplevel
        PipelineOptions)

    known = PipelineOptions(beam_args).get_all_options(retain_unknown_options=False)
    everything = PipelineOptions(beam_args).get_all_options(retain_unknown_options=True)
    return set(everything) - set(known), known


def test_dataflow_options_are_complete_beam_options(configs):
    config, _ = configs
    unknown, options = _unknown_beam_options(config.beam_args)
    assert not unknown
    assert options["runner"] == "DataflowRunner"
    for required in ("project", "region", "temp_location", "sdk_container_image"):
        assert options[required], required


@pytest.mark.parametrize("runner", sorted(BEAM_CONFIGS))
def test_flink_and_spark_configs_replace_the_beam_options(runner):
    config, kubeflow_config = kubeflow_runner.load_compile_config([CONFIG, BEAM_CONFIGS[runner]])
    base, base_kubeflow = kubeflow_runner.load_compile_config([CONFIG])
    assert kubeflow_config == base_kubeflow and config.pipeline_root == base.pipeline_root
    assert config.beam_args and not set(config.beam_args) & set(base.beam_args)
    unknown, options = _unknown_beam_options(config.beam_args)
    assert not unknown
    assert options["runner"] == "PortableRunner"
    assert runner in options["job_endpoint"]
    assert options["environment_type"] == "EXTERNAL" and options["environment_config"]


def test_flags_override_the_config_files(configs):
    config, kubeflow_config = configs
    config, kubeflow_config = kubeflow_runner.apply_flags(
        config, kubeflow_config, image="registry.local/riskpipe:1", pipeline_root="s3://b/root",
        beam_args=["--runner=DirectRunner"], display_name=None)
    assert kubeflow_config.image == "registry.local/riskpipe:1"
    assert kubeflow_config.display_name == configs[1].display_name
    assert config.pipeline_root == "s3://b/root"
    assert config.beam_args == ["--runner=DirectRunner"]


def test_a_local_root_or_a_missing_image_is_refused(configs):
    config, kubeflow_config = configs
    local = kubeflow_runner.apply_flags(config, kubeflow_config, None, "/tmp/root", None, None)
    with pytest.raises(UsageError, match="pipeline_root '/tmp/root' is not a URI"):
        kubeflow_runner.check_for_kubeflow(*local)
    no_image = kubeflow_runner.apply_flags(config, kubeflow_config, "", None, None, None)
    with pytest.raises(UsageError, match="--image"):
        kubeflow_runner.check_for_kubeflow(*no_image)


@pytest.mark.parametrize("name", ["Riskpipe", "risk.pipe", "riskpipe-", "r" * 64])
def test_a_pipeline_name_that_cannot_be_a_label_is_refused(configs, name):
    config, kubeflow_config = configs
    with pytest.raises(UsageError, match=f"pipeline_name '{re.escape(name)}' cannot label"):
        kubeflow_runner.check_for_kubeflow(dataclasses.replace(config, pipeline_name=name),
                                           kubeflow_config)


def test_an_unknown_config_key_names_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kubeflow:\n  imag: x\n")
    with pytest.raises(UsageError, match=r"bad.yaml: kubeflow: unknown key 'imag'"):
        kubeflow_runner.load_compile_config([str(bad)])


def test_compile_refuses_a_bad_output_before_compiling(tmp_path, capsys):
    missing_dir = str(tmp_path / "nowhere" / "pipeline.json")
    assert cli.main(["compile", "--config", CONFIG, "--output", missing_dir]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["compile", "--config", CONFIG, "--output", str(tmp_path / "p.txt")]) == 2
    assert not os.listdir(tmp_path)
