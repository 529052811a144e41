"""Queries of the pipeline's ML Metadata store: executions, their nodes, states and outputs.

The local runner asks which component failed; the run summary and the tests
read what each component of a run produced.
"""
import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

# MLMD context types TFX registers for every run.
PIPELINE_CONTEXT, RUN_CONTEXT, NODE_CONTEXT = "pipeline", "pipeline_run", "node"


def open_store(metadata_path: str, writable: bool = False):
    """A MetadataStore on the SQLite file (read-only unless asked), or None when it does not exist."""
    # pylint: disable=import-outside-toplevel
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    if not os.path.exists(metadata_path):
        return None
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = (metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
                                     if writable else
                                     metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
    return metadata_store.MetadataStore(config)


def last_execution_id(metadata_path: str) -> int:
    """The highest execution id recorded so far (0 for a new store)."""
    store = open_store(metadata_path)
    if store is None:
        return 0
    return max((e.id for e in store.get_executions()), default=0)


def node_of(store, execution_id: int) -> Optional[str]:
    """The pipeline node id of an execution (its node context is '<pipeline>.<node>')."""
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == NODE_CONTEXT:
            return context.name.split(".", 1)[-1]
    return None


def failed_component(metadata_path: str, after: int = 0) -> Optional[str]:
    """The node of the latest failed execution with an id above `after`, if any."""
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel

    store = open_store(metadata_path)
    if store is None:
        return None
    failed = [e for e in store.get_executions()
              if e.id > after and e.last_known_state == metadata_store_pb2.Execution.FAILED]
    return node_of(store, max(failed, key=lambda e: e.id).id) if failed else None


def run_executions(store, pipeline_name: str) -> List[Tuple[str, List[Tuple[str, object]]]]:
    """(run id, [(node id, execution)]) of every run of `pipeline_name`, oldest run first."""
    pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT, pipeline_name)
    if pipeline is None:
        return []
    runs: Dict[str, List[Tuple[str, object]]] = {}
    for execution in sorted(store.get_executions_by_context(pipeline.id), key=lambda e: e.id):
        runs.setdefault(run_id_of(store, execution.id), []).append(
            (node_of(store, execution.id), execution))
    return sorted(runs.items(), key=lambda run: run[1][0][1].id)


def upstream_executions(store, execution_id: int) -> List[object]:
    """The executions whose work the given one built on, itself included.

    Followed backwards through input artifacts to the execution that produced
    each; a cached execution reused an earlier one's outputs, so the producer
    of an artifact is the execution that is not cached. The Evaluator's baseline
    (the model blessed before) is compared against, not built on.
    """
    # pylint: disable=import-outside-toplevel
    from ml_metadata.proto import metadata_store_pb2
    from tfx.types.standard_component_specs import BASELINE_MODEL_KEY

    event = metadata_store_pb2.Event
    seen, frontier = {execution_id}, [execution_id]
    while frontier:
        inputs = [e.artifact_id for e in store.get_events_by_execution_ids(frontier)
                  if e.type == event.INPUT
                  and not (e.path.steps and e.path.steps[0].key == BASELINE_MODEL_KEY)]
        producers = {e.execution_id for e in store.get_events_by_artifact_ids(inputs)
                     if e.type == event.OUTPUT}
        original = [e.id for e in store.get_executions_by_id(sorted(producers - seen))
                    if state_name(e) != "cached"]
        seen.update(original)
        frontier = original
    return store.get_executions_by_id(sorted(seen))


@dataclasses.dataclass(frozen=True)
class PushedVersion:
    """A model version a run pushed anew, and the executions that made and judged it."""
    version: int
    directory: str
    run_id: str
    pusher: object
    evaluator: object
    lineage: tuple           # upstream_executions of the Pusher
    examples_uri: str        # the examples the model was trained and evaluated on
    input_base: str          # the raw data their source read
    example_source: str = ""  # the node id of that source (FeatureGen or CsvExampleGen)


def pushed_versions(store, pipeline_name: str, pusher: str, evaluator: str,
                    example_sources: Sequence[str]) -> List[PushedVersion]:
    """Every version the pipeline's runs pushed (not those already served), oldest first.

    `pusher` and `evaluator` are the node ids of those components,
    `example_sources` those of the components that may have produced the examples.
    """
    found = []
    for run_id, executions in run_executions(store, pipeline_name):
        by_node = dict(executions)
        pushed = by_node.get(pusher) and _pushed_artifact(store, by_node[pusher])
        if not pushed:
            continue
        lineage = tuple(upstream_executions(store, by_node[pusher].id))
        source = next(e for e in lineage if node_of(store, e.id) in example_sources)
        found.append(PushedVersion(
            int(custom_property(pushed, "pushed_version")),
            custom_property(pushed, "pushed_destination"), run_id, by_node[pusher],
            by_node[evaluator], lineage, output_artifacts(store, source.id)["examples"][0].uri,
            custom_property(source, "input_base"), node_of(store, source.id)))
    return found


def _pushed_artifact(store, pusher_execution):
    """The PushedModel artifact of a Pusher execution that pushed anew, or None."""
    for artifact in output_artifacts(store, pusher_execution.id).get("pushed_model", []):
        if custom_property(artifact, "pushed") and not custom_property(artifact,
                                                                       "already_served"):
            return artifact
    return None


def latest_run_executions(store, pipeline_name: str) -> List[Tuple[str, object]]:
    """(node id, execution) of the latest run of `pipeline_name`, in execution order."""
    pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT, pipeline_name)
    if pipeline is None:
        return []
    executions = store.get_executions_by_context(pipeline.id)
    if not executions:
        return []
    latest = max(executions, key=lambda e: e.id)
    run = next((c for c in store.get_contexts_by_execution(latest.id) if c.type == RUN_CONTEXT),
               None)
    if run is None:
        return []
    in_run = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    return [(node_of(store, e.id), e) for e in in_run]


def run_id_of(store, execution_id: int) -> str:
    """The pipeline run (its run context's name) an execution belongs to."""
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == RUN_CONTEXT:
            return context.name
    raise ValueError(f"execution {execution_id} belongs to no pipeline run")


def output_artifacts(store, execution_id: int) -> Dict[str, list]:
    """Output key -> the MLMD artifacts an execution produced (or reused from the cache)."""
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel

    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type == metadata_store_pb2.Event.OUTPUT]
    by_id = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    out: Dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        out.setdefault(key, []).append(by_id[event.artifact_id])
    return out


def custom_property(node, key: str):
    """An artifact's or execution's custom property: its int or string value, or None."""
    if key not in node.custom_properties:
        return None
    value = node.custom_properties[key]
    return value.string_value if value.HasField("string_value") else value.int_value


def state_name(execution) -> str:
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel

    name = metadata_store_pb2.Execution.State.Name(execution.last_known_state).lower()
    return {"complete": "ran"}.get(name, name)


def latest_model_run(metadata_path: str) -> Optional[str]:
    """The directory of the latest Trainer run (its TensorBoard logs), or None."""
    return latest_output_uri(metadata_path, "ModelRun")


def latest_output_uri(metadata_path: str, type_name: str) -> Optional[str]:
    """The directory of the newest artifact of an MLMD type (e.g. "Schema"), or None."""
    store = open_store(metadata_path)
    if store is None:
        return None
    artifacts = store.get_artifacts_by_type(type_name)
    return max(artifacts, key=lambda a: a.id).uri if artifacts else None


def pipeline_names(store) -> List[str]:
    """The names of the pipelines recorded in the store."""
    return sorted(context.name for context in store.get_contexts_by_type(PIPELINE_CONTEXT))
