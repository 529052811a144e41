"""Compiles riskpipe's create_pipeline for Kubeflow Pipelines with TFX's KubeflowV2DagRunner.

The same DAG as a local run, with three things supplied for the cluster: the
container image every component runs in, a pipeline root that every pod can
reach, and the Beam options of a distributed runner (Dataflow, Flink or Spark).
They come from config files (PipelineConfig keys plus a `kubeflow` section
with `image` and `display_name`) and flags, flags last.

Two output forms, chosen by the file name:
  *.json         the PipelineJob (display name, labels, runtime config with the
                 pipeline root, and the pipeline spec): what Vertex AI Pipelines
                 submits and what TFX writes;
  *.yaml, *.yml  the PipelineSpec with its default pipeline root, then a second
                 YAML document, the Kubernetes PlatformSpec: what the Kubeflow
                 Pipelines v2 API server accepts as an upload.
Both are written deterministically (sorted keys), so a committed spec can be
compared with a fresh compile.

Labels, for cost attribution. KubeflowV2DagRunner takes no user labels and
writes no PlatformSpec (TFX 1.16: "TODO(b/166343606): Support user-provided
labels"), so they are added here:
  - the PipelineJob's `labels` get `riskpipe-pipeline: <pipeline_name>`, a label
    of the Vertex run; GCP label keys take no '.' or '/';
  - the PlatformSpec labels the pod of each component `riskpipe.io/component:
    <node id>` and `riskpipe.io/pipeline: <pipeline_name>`, as kfp-kubernetes'
    add_pod_label would. A PipelineJob has no PlatformSpec field (nor does
    Vertex's), so the .json output carries no pod labels.
The KFP backend copies pod labels into the pod as they are, resolving no
placeholder, so a `{{$.pipeline_job_name}}` run label is impossible; it labels
every pod of a run `pipeline/runid: <run id>` itself.
"""
import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from common.errors import UsageError
from common.files import atomic_write_text
from pipeline import configs
from pipeline.configs import PipelineConfig

DEFAULT_CONFIG = os.path.join("kubeflow", "config", "pipeline.yaml")
KUBEFLOW_SECTION = "kubeflow"
JSON_SUFFIXES = (".json",)
YAML_SUFFIXES = (".yaml", ".yml")
# Roots a component reads or writes from its own pod: local paths would stay
# inside that pod.
REMOTE_ROOTS = ("pipeline_root", "data_root", "serving_root")
# The pod labels OpenCost aggregates cost by (aggregate=label:riskpipe.io/component).
COMPONENT_LABEL = "riskpipe.io/component"
PIPELINE_LABEL = "riskpipe.io/pipeline"
# The PipelineJob's label: GCP label keys take no '.' or '/'.
JOB_PIPELINE_LABEL = "riskpipe-pipeline"
# A value both a GCP label (lowercase, digits, '-', '_') and a Kubernetes label
# (alphanumeric at both ends) accept, at most 63 characters.
LABEL_VALUE = re.compile(r"[a-z0-9]([-_a-z0-9]{0,61}[a-z0-9])?")


@dataclasses.dataclass
class KubeflowConfig:
    # The image every component runs in: the Dockerfile's `pipeline` target.
    image: str = ""
    # The pipeline's name in the Kubeflow UI; defaults to pipeline_name.
    display_name: str = ""


def load_compile_config(paths: Sequence[str]) -> Tuple[PipelineConfig, KubeflowConfig]:
    """PipelineConfig and KubeflowConfig from YAML files, later files overriding earlier ones."""
    pipeline_config, kubeflow_config = PipelineConfig(), KubeflowConfig()
    for path in paths:
        overrides = configs.read_yaml_mapping(path)
        kubeflow_overrides = overrides.pop(KUBEFLOW_SECTION, None) or {}
        if not isinstance(kubeflow_overrides, dict):
            raise UsageError(f"config file {path}: '{KUBEFLOW_SECTION}' must be a mapping")
        kubeflow_config = configs.merge(
            kubeflow_config, kubeflow_overrides, f"{path}: {KUBEFLOW_SECTION}")
        pipeline_config = configs.merge(
            pipeline_config, overrides, path)
    return pipeline_config, kubeflow_config


def check_for_kubeflow(config: PipelineConfig, kubeflow_config: KubeflowConfig) -> None:
    """Raises UsageError naming the setting that cannot work on a cluster."""
    if not kubeflow_config.image:
        raise UsageError("no container image: pass --image or set kubeflow.image in the config")
    for field in REMOTE_ROOTS:
        value = getattr(config, field)
        if "://" not in value:
            raise UsageError(
                f"{field} '{value}' is not a URI: each component runs in its own pod, so "
                f"{field} must be storage every pod reaches (gs://, s3://, ...)")
    if not LABEL_VALUE.fullmatch(config.pipeline_name):
        raise UsageError(
            f"pipeline_name '{config.pipeline_name}' cannot label the pipeline's pods and job: "
            "use at most 63 lowercase letters, digits, '-' and '_', a letter or digit at each end")


def pipeline_job(config: PipelineConfig, kubeflow_config: KubeflowConfig) -> Dict[str, Any]:
    """The PipelineJob dict KubeflowV2DagRunner compiles from create_pipeline(config)."""
    check_for_kubeflow(config, kubeflow_config)
    # pylint: disable=import-outside-toplevel
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline.pipeline import create_pipeline

    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            display_name=kubeflow_config.display_name or None,
            default_image=kubeflow_config.image))
    # Kubeflow provides the metadata store: no connection config.
    job = runner.run(create_pipeline(config), write_out=False)
    # The Kubeflow Pipelines API server reads the pipeline root from the spec
    # itself; Vertex AI from the runtime config, which TFX already filled.
    job["pipelineSpec"]["defaultPipelineRoot"] = config.pipeline_root
    job.setdefault("labels", {})[JOB_PIPELINE_LABEL] = config.pipeline_name
    return job


def pod_labels(pipeline_spec: Dict[str, Any]) -> Dict[str, Dict[str, str]]:
    """Executor label -> the labels of the pod that runs it, for every container executor."""
    executors = pipeline_spec["deploymentSpec"]["executors"]
    labels = {}
    for task_name, task in pipeline_spec["root"]["dag"]["tasks"].items():
        executor = pipeline_spec["components"][task["componentRef"]["name"]]["executorLabel"]
        # A resolver executor is a metadata query the orchestrator runs: no pod.
        if "container" in executors[executor]:
            # TFX names each task after its node id.
            labels[executor] = {COMPONENT_LABEL: task_name,
                                PIPELINE_LABEL: pipeline_spec["pipelineInfo"]["name"]}
    return labels


def platform_spec(pipeline_spec: Dict[str, Any]) -> Dict[str, Any]:
    """The Kubernetes PlatformSpec that labels every component's pod on the KFP 2.x backend."""
    executors = {executor: {"podMetadata": {"labels": labels}}
                 for executor, labels in pod_labels(pipeline_spec).items()}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def check_output_name(output: str) -> None:
    if not output.endswith(JSON_SUFFIXES + YAML_SUFFIXES):
        raise UsageError(
            f"--output {output}: name a .json (PipelineJob) or .yaml (PipelineSpec) file")


def render(job: Dict[str, Any], output: str) -> str:
    """The text written to `output`: the PipelineJob as JSON, or the PipelineSpec and its
    PlatformSpec as two YAML documents (the layout the KFP SDK compiler writes)."""
    check_output_name(output)
    if output.endswith(JSON_SUFFIXES):
        return json.dumps(job, indent=2, sort_keys=True) + "\n"
    spec = job["pipelineSpec"]
    return yaml.safe_dump_all([spec, platform_spec(spec)], sort_keys=True,
                              default_flow_style=False)


def check_output_path(output: str) -> None:
    """Raises UsageError before compiling when `output` could not be written."""
    check_output_name(output)
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise UsageError(f"--output {output}: directory {directory} does not exist")


def compile_pipeline(config: PipelineConfig, output: str, image: str,
                     display_name: str = "") -> Dict[str, Any]:
    """Compiles create_pipeline(config) for Kubeflow into `output`; returns the PipelineJob."""
    check_output_path(output)
    job = pipeline_job(config, KubeflowConfig(image=image, display_name=display_name))
    atomic_write_text(output, render(job, output))
    return job


def apply_flags(config: PipelineConfig, kubeflow_config: KubeflowConfig, image: Optional[str],
                pipeline_root: Optional[str], beam_args: Optional[List[str]],
                display_name: Optional[str]) -> Tuple[PipelineConfig, KubeflowConfig]:
    """Command-line values over the config files' (None means not given)."""
    if image is not None:
        kubeflow_config = dataclasses.replace(kubeflow_config, image=image)
    if display_name is not None:
        kubeflow_config = dataclasses.replace(kubeflow_config, display_name=display_name)
    if pipeline_root is not None:
        config = dataclasses.replace(config, pipeline_root=pipeline_root)
    if beam_args is not None:
        config = dataclasses.replace(config, beam_args=list(beam_args))
    return config, kubeflow_config
