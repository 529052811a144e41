"""Executor of AnomalyGate: reads ExampleValidator's anomalies and raises on any."""
import os
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from common.errors import DataError

ANOMALIES_KEY = "anomalies"
# The file ExampleValidator writes into each split directory of its output.
ANOMALIES_FILE = "SchemaDiff.pb"


def load_anomalies(artifact: types.Artifact) -> Dict[str, Any]:
    """Split name -> the tensorflow_metadata Anomalies proto of that split."""
    from tensorflow_data_validation.utils import anomalies_util  # pylint: disable=import-outside-toplevel

    out = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        out[split] = anomalies_util.load_anomalies_binary(path)
    return out


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


class Executor(base_executor.BaseExecutor):
    """Raises DataError listing every anomaly; succeeds, writing nothing, otherwise."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        del output_dict, exec_properties
        artifact = artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY])
        problems = describe(load_anomalies(artifact))
        if problems:
            raise DataError(
                f"the examples do not match the schema ({len(problems)} anomal"
                f"{'y' if len(problems) == 1 else 'ies'}): " + "; ".join(problems))
