"""`riskpipe compile`: the pipeline spec for Kubeflow Pipelines (see pipeline/kubeflow_runner.py)."""
import argparse
import os

from common.errors import UsageError

DEFAULT_OUTPUT = os.path.join("kubeflow", "pipeline.json")


def register(subparsers) -> None:
    from pipeline.kubeflow_runner import DEFAULT_CONFIG  # pylint: disable=import-outside-toplevel

    parser = subparsers.add_parser(
        "compile", help="compile the pipeline for Kubeflow Pipelines (KubeflowV2DagRunner)",
        description="Compiles the same create_pipeline as `riskpipe run` into a Kubeflow "
                    "Pipelines spec. The image, the pipeline root and the Beam options come "
                    "from the config files and the flags (flags win). A .json output is the "
                    "PipelineJob (Vertex AI Pipelines); a .yaml output is the PipelineSpec the "
                    "Kubeflow Pipelines API server uploads.")
    parser.add_argument("--config", action="append", metavar="FILE",
                        help="YAML config: the keys of `riskpipe run --config` plus a "
                             "`kubeflow` section (image, display_name); repeat to layer files, "
                             f"e.g. a Beam runner's (default: {DEFAULT_CONFIG})")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, metavar="FILE",
                        help=f"where to write the spec, .json or .yaml (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--image", metavar="IMAGE",
                        help="the container image of every component (overrides kubeflow.image)")
    parser.add_argument("--pipeline-root", metavar="URI",
                        help="where the components write their artifacts, e.g. gs://BUCKET/root")
    parser.add_argument("--beam-arg", action="append", metavar="ARG", dest="beam_args",
                        help="a Beam pipeline option, e.g. --beam-arg=--runner=DataflowRunner; "
                             "repeat it; replaces the config's beam_args")
    parser.add_argument("--display-name", metavar="NAME",
                        help="the pipeline's name in the Kubeflow UI")
    parser.set_defaults(func=run_compile)


def config_paths(args: argparse.Namespace):
    from pipeline.kubeflow_runner import DEFAULT_CONFIG  # pylint: disable=import-outside-toplevel

    if args.config:
        return list(args.config)
    if not os.path.isfile(DEFAULT_CONFIG):
        raise UsageError(f"no --config given and {DEFAULT_CONFIG} does not exist here")
    return [DEFAULT_CONFIG]


def run_compile(args: argparse.Namespace) -> int:
    # pylint: disable=import-outside-toplevel
    from pipeline import kubeflow_runner

    kubeflow_runner.check_output_path(args.output)
    config, kubeflow_config = kubeflow_runner.load_compile_config(config_paths(args))
    config, kubeflow_config = kubeflow_runner.apply_flags(
        config, kubeflow_config, image=args.image, pipeline_root=args.pipeline_root,
        beam_args=args.beam_args, display_name=args.display_name)
    job = kubeflow_runner.compile_pipeline(config, args.output, kubeflow_config.image,
                                           kubeflow_config.display_name)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"wrote {args.output}: {len(tasks)} tasks, image {kubeflow_config.image}, "
          f"pipeline root {config.pipeline_root}")
    return 0
