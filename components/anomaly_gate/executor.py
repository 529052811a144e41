"""Executor of AnomalyGate: raises on any anomaly, measures drift, and passes the statistics on."""
import json
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from common.errors import DataError
from components.anomaly_gate import STOP, drift

ANOMALIES_KEY = "anomalies"
STATISTICS_KEY = "statistics"
SCHEMA_KEY = "schema"
PREVIOUS_STATISTICS_KEY = "previous_statistics"
VALIDATED_STATISTICS_KEY = "validated_statistics"
DRIFT_ACTION_KEY = "drift_action"
PSI_THRESHOLD_KEY = "psi_threshold"
SERVING_STATISTICS_KEY = "serving_statistics"
# The file ExampleValidator writes into each split directory of its output.
ANOMALIES_FILE = "SchemaDiff.pb"
# StatisticsGen's file in each split directory; ImportSchemaGen's file.
STATISTICS_FILE = "FeatureStats.pb"
SCHEMA_FILE = "schema.pbtxt"
# The drift report, in the root of the validated statistics.
DRIFT_FILE = "drift.json"


def load_anomalies(artifact: types.Artifact) -> Dict[str, Any]:
    """Split name -> the tensorflow_metadata Anomalies proto of that split."""
    from tensorflow_data_validation.utils import anomalies_util  # pylint: disable=import-outside-toplevel

    out = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        out[split] = anomalies_util.load_anomalies_binary(path)
    return out


def load_statistics(artifact: Optional[types.Artifact]) -> Dict[str, Any]:
    """Split name -> DatasetFeatureStatisticsList of an ExampleStatistics artifact ({} for None)."""
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel

    if artifact is None:
        return {}
    return {split: tfdv.load_stats_binary(os.path.join(
                artifact_utils.get_split_uri([artifact], split), STATISTICS_FILE))
            for split in artifact_utils.decode_split_names(artifact.split_names)}


def load_serving_statistics(path: str):
    """The serving statistics file (what tfdv.load_statistics reads), or None when not given."""
    # pylint: disable=import-outside-toplevel
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format

    if not path:
        return None
    try:
        return tfdv.load_statistics(path)
    except (OSError, text_format.ParseError) as err:
        raise DataError(f"validation.serving_statistics {path}: cannot read it ({err})") from err


def describe(anomalies_by_split: Dict[str, Any]) -> List[str]:
    """One "split 'x': feature: why" line per anomaly, sorted by split and feature."""
    lines = []
    for split in sorted(anomalies_by_split):
        anomalies = anomalies_by_split[split]
        for feature in sorted(anomalies.anomaly_info):
            info = anomalies.anomaly_info[feature]
            lines.append(f"split '{split}': feature '{feature}': "
                         f"{info.short_description or 'anomaly'} ({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"split '{split}': dataset: {info.short_description} ({info.description})")
    return lines


def _optional_instance(input_dict: Dict[str, List[types.Artifact]], key: str):
    """The one artifact of an optional input, or None when the resolver found none."""
    artifacts = input_dict.get(key) or []
    return artifact_utils.get_single_instance(artifacts) if artifacts else None


def _drift_report(input_dict, exec_properties) -> dict:
    """The drift report: the settings, what was compared, and one row per feature compared."""
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel

    statistics = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
    previous = _optional_instance(input_dict, PREVIOUS_STATISTICS_KEY)
    schema_uri = artifact_utils.get_single_uri(input_dict[SCHEMA_KEY])
    threshold = exec_properties[PSI_THRESHOLD_KEY]
    rows = drift.drift_rows(
        load_statistics(statistics), load_statistics(previous),
        load_serving_statistics(exec_properties[SERVING_STATISTICS_KEY]),
        tfdv.load_schema_text(os.path.join(schema_uri, SCHEMA_FILE)), threshold)
    return {"drift_action": exec_properties[DRIFT_ACTION_KEY], "psi_threshold": threshold,
            "previous_statistics": previous.uri if previous else "",
            "serving_statistics": exec_properties[SERVING_STATISTICS_KEY], "features": rows}


def _pass_on(statistics: types.Artifact, output: types.Artifact, report: dict) -> None:
    """Copies the statistics into the output, the next run's reference, with the report."""
    io_utils.copy_dir(statistics.uri, output.uri)
    output.split_names = statistics.split_names
    with fileio.open(os.path.join(output.uri, DRIFT_FILE), "w") as f:
        f.write(json.dumps(report, indent=1, sort_keys=True))


class Executor(base_executor.BaseExecutor):
    """Raises DataError on any anomaly, or on drift when the action is 'stop'."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        artifact = artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY])
        problems = describe(load_anomalies(artifact))
        if problems:
            raise DataError(
                f"the examples do not match the schema ({len(problems)} anomal"
                f"{'y' if len(problems) == 1 else 'ies'}): " + "; ".join(problems))
        report = _drift_report(input_dict, exec_properties)
        drifted = [drift.describe(row, report["psi_threshold"])
                   for row in report["features"] if row["drifted"]]
        if drifted and report["drift_action"] == STOP:
            raise DataError(
                f"the data drifted ({len(drifted)} feature comparison"
                f"{'' if len(drifted) == 1 else 's'} beyond the thresholds; drift_action is "
                f"'{STOP}'): " + "; ".join(drifted))
        _pass_on(artifact_utils.get_single_instance(input_dict[STATISTICS_KEY]),
                 artifact_utils.get_single_instance(output_dict[VALIDATED_STATISTICS_KEY]),
                 report)
