"""Runs the riskpipe pipeline on this machine: LocalDagRunner, MLMD in SQLite, Beam DirectRunner.

A failed run raises ComponentFailure naming the component and the root cause,
found under the layers of Beam and TFX wrapping.
"""
import dataclasses
import hashlib
import os
import re
import shutil
from typing import List, Optional, Tuple

from common.errors import DataError, UsageError
from pipeline.configs import PipelineConfig
from pipeline.schema_update import DEFAULT_SCHEMA_PATH

# Beam options that ship code to workers: with none of them, TFX would build
# and stage a package of TFX alone, which misses riskpipe's own code.
_DEPENDENCY_OPTIONS = ("--setup_file", "--extra_package", "--requirements_file",
                       "--sdk_container_image", "--worker_harness_container_image")
SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
# Under the pipeline root: the checked copies of credit tables, and the schema a
# credit run inferred (SchemaGen's file name), which later runs import.
STAGED_TABLES_DIR = "credit_tables"
KEPT_SCHEMA_FILE = "schema.pbtxt"
# Beam appends this to an exception raised inside a transform.
_BEAM_STEP_NOTE = re.compile(r"\s*\[while running '[^']*'\]")
# The "Type: message" last line of a traceback carried as text from a Beam worker.
_TRACEBACK_LAST_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.*)$")
# riskpipe's errors by the class name a worker's traceback text shows.
_ERRORS_BY_NAME = {"DataError": DataError, "RawDataError": DataError, "UsageError": UsageError}


class ComponentFailure(Exception):
    """A pipeline run stopped: which component, and why.

    `error_class` is DataError or UsageError when the cause is one (bad data,
    a bad setting found at run time), else None (a fault in a component).
    """

    def __init__(self, component: str, cause: str, error_class: Optional[type]):
        super().__init__(f"{component} failed: {cause}")
        self.component = component
        self.cause = cause
        self.error_class = error_class


def metadata_path(config: PipelineConfig) -> str:
    """The MLMD SQLite file: config.metadata_path or <pipeline_root>/metadata.sqlite."""
    return config.metadata_path or os.path.join(config.pipeline_root, "metadata.sqlite")


def beam_args(extra: List[str]) -> List[str]:
    """The Beam options of a run: none means the in-process DirectRunner.

    Given options (e.g. --direct_running_mode=multi_processing
    --direct_num_workers=2, or a distributed runner's) get riskpipe's setup.py
    as the package to ship to workers, unless they name one themselves.
    """
    extra = list(extra)
    if not extra or any(arg.startswith(_DEPENDENCY_OPTIONS) for arg in extra):
        return extra
    return extra + [f"--setup_file={SETUP_FILE}"] if os.path.exists(SETUP_FILE) else extra


def pin_schema(schema_path: str, pipeline_root: str) -> str:
    """Copies the schema to a path named by its content hash and returns that path.

    ImportSchemaGen's cache key is the schema's path, not its content: a
    content-addressed copy makes an edited schema re-imported and an unchanged
    one a cache hit.
    """
    try:
        with open(schema_path, "rb") as f:
            content = f.read()
    except OSError as err:
        raise DataError(f"cannot read schema {schema_path}: {err.strerror}") from err
    digest = hashlib.sha256(content).hexdigest()[:16]
    pinned = os.path.join(pipeline_root, "schemas", digest, "schema.pbtxt")
    if not os.path.exists(pinned):
        os.makedirs(os.path.dirname(pinned), exist_ok=True)
        partial = pinned + ".partial"
        shutil.copyfile(schema_path, partial)
        os.replace(partial, pinned)
    return pinned


def kept_schema_path(pipeline_root: str) -> str:
    """Where a credit run keeps the schema SchemaGen inferred on its first run."""
    return os.path.join(pipeline_root, KEPT_SCHEMA_FILE)


def _schema_path(config: PipelineConfig, pipeline_root: str) -> str:
    """The schema to import: the configured one, else credit's kept inferred one, else
    fraud's curated one; "" for a credit run that infers its schema with SchemaGen."""
    schema = config.schema_path
    if not schema and config.task == "credit":
        schema = kept_schema_path(pipeline_root)
        if not os.path.exists(schema):
            return ""
    return pin_schema(schema or DEFAULT_SCHEMA_PATH, pipeline_root)


def resolve(config: PipelineConfig) -> PipelineConfig:
    """`config` with absolute paths, the pinned schema and the full Beam options."""
    pipeline_root = os.path.abspath(config.pipeline_root)
    return dataclasses.replace(
        config,
        data_root=os.path.abspath(config.data_root),
        pipeline_root=pipeline_root,
        serving_root=os.path.abspath(config.serving_root),
        metadata_path=os.path.abspath(metadata_path(config)),
        schema_path=_schema_path(config, pipeline_root),
        beam_args=beam_args(config.beam_args),
    )


def stage_credit_table(config: PipelineConfig):
    """The credit table checked and staged under the pipeline root (components/credit/table.py)."""
    from components.credit.table import stage_table  # pylint: disable=import-outside-toplevel

    return stage_table(config.data_root, config.credit,
                       os.path.join(os.path.abspath(config.pipeline_root), STAGED_TABLES_DIR))


def _keep_inferred_schema(config: PipelineConfig) -> None:
    """After a credit run that inferred its schema, keeps it for the next runs to import."""
    from pipeline import mlmd_queries  # pylint: disable=import-outside-toplevel

    kept = kept_schema_path(config.pipeline_root)
    inferred = mlmd_queries.latest_output_uri(config.metadata_path, "Schema")
    if config.schema_path or os.path.exists(kept) or inferred is None:
        return
    partial = kept + ".partial"
    shutil.copyfile(os.path.join(inferred, KEPT_SCHEMA_FILE), partial)
    os.replace(partial, kept)


def run(config: PipelineConfig, credit_table=None) -> PipelineConfig:
    """Runs the pipeline to the end; returns the resolved config the run used.

    A credit run checks and stages its table first unless given the staged
    table, and keeps the schema it inferred. Every component execution's cost
    is recorded, a failed run's too (pipeline/cost_ledger.py). Raises
    ComponentFailure when a component fails.
    """
    # pylint: disable=import-outside-toplevel
    from tfx.orchestration import metadata
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipeline import cost_ledger, mlmd_queries
    from pipeline.pipeline import create_pipeline

    if config.task == "credit" and credit_table is None:
        credit_table = stage_credit_table(config)
    config = resolve(config)
    connection = metadata.sqlite_metadata_connection_config(config.metadata_path)
    last_execution = mlmd_queries.last_execution_id(config.metadata_path)
    error = None
    with cost_ledger.ComponentMeter() as meter:
        try:
            LocalDagRunner().run(create_pipeline(config, connection, credit_table))
        except Exception as err:  # pylint: disable=broad-except
            error = err
    cost_ledger.record_run(config.metadata_path, config.pipeline_root, last_execution, meter,
                           config.cost)
    if error is not None:
        component = mlmd_queries.failed_component(config.metadata_path, after=last_execution)
        cause, error_class = root_cause(error)
        raise ComponentFailure(component or config.pipeline_name, cause, error_class) from error
    if config.task == "credit":
        _keep_inferred_schema(config)
    return config


def _exception_chain(err: BaseException) -> List[BaseException]:
    chain: List[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _clean(message: str) -> str:
    """The message without Beam's step notes; the last error line of a traceback text."""
    message = _BEAM_STEP_NOTE.sub("", message).strip()
    if "Traceback (most recent call last)" in message:
        errors = [m for m in map(_TRACEBACK_LAST_LINE.match, message.splitlines()) if m]
        if errors:
            kind, text = errors[-1].groups()
            return f"{kind}: {text.strip()}"
    return message


def root_cause(err: BaseException) -> Tuple[str, Optional[type]]:
    """(one-line cause, DataError/UsageError/None) of a failed run's exception."""
    chain = _exception_chain(err)
    for exc in chain:
        if isinstance(exc, (DataError, UsageError)):
            return _first_line(_clean(str(exc))), DataError if isinstance(exc, DataError) \
                else UsageError
    # The deepest exception is the original one; the others wrap it.
    deepest = chain[-1]
    text = _first_line(_clean(str(deepest)))
    found = _TRACEBACK_LAST_LINE.match(text)
    if found:  # the text of an exception raised in a Beam worker process
        kind, message = found.groups()
        if kind in _ERRORS_BY_NAME:
            return message, _ERRORS_BY_NAME[kind]
        return text, None
    return (f"{type(deepest).__name__}: {text}" if text else type(deepest).__name__), None
