"""Executor of riskpipe's StatisticsGen: TFX's, with a sample rate per split from a row cap.

Statistics cost CPU in proportion to the rows (about 55 s on 1 M
transactions), while what the pipeline reads from them does not get better
beyond a few hundred thousand rows: the schema's drift and skew comparators
and AnomalyGate's PSI compare distributions, which TFDV's quantiles and top-k
values estimate closely from a sample of a few hundred thousand examples.
Nor do the per-row checks of the raw columns (types, domains, missing
values): FeatureGen validates every raw row itself and stops the run on the
first bad one (components/feature_gen/raw_data.py).

So a split whose size the example source recorded (FeatureGen's
`num_examples_<split>`) and that holds more than `max_examples` rows is
sampled at max_examples / size, by TFDV's own sampling (TFX's
`sample_rate_by_split`), which keeps or drops whole record batches of up to
1,000 rows: the sample holds about, not exactly, max_examples. A split of
unknown size (CsvExampleGen records none; credit tables are small) or below
the cap is computed on every row, so results on small data do not change.
The statistics' `num_examples` is then the sampled count: the real split
sizes are FeatureGen's properties.
"""
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.statistics_gen import executor as tfx_statistics_gen
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils

from components.feature_gen.executor import num_examples_property

MAX_EXAMPLES_KEY = "max_examples"


def sample_rates(counts: Dict[str, Optional[int]], max_examples: int) -> Dict[str, float]:
    """Split -> sample rate for the splits known to hold more than `max_examples` (0: none)."""
    if max_examples <= 0:
        return {}
    return {split: max_examples / count for split, count in counts.items()
            if count is not None and count > max_examples}


def split_counts(examples: types.Artifact, exclude_splits: List[str]) -> Dict[str, Optional[int]]:
    """Split -> its number of examples as the source recorded it, None when it did not."""
    counts = {}
    for split in artifact_utils.decode_split_names(examples.split_names):
        if split in exclude_splits:
            continue
        name = num_examples_property(split)
        counts[split] = (examples.get_int_custom_property(name)
                         if examples.has_custom_property(name) else None)
    return counts


def _log_rates(counts: Dict[str, Optional[int]], rates: Dict[str, float]) -> None:
    for split, count in counts.items():
        if split in rates:
            logging.info("StatisticsGen: split %s has %d examples, sampled at rate %.4g",
                         split, count, rates[split])
        else:
            logging.info("StatisticsGen: split %s (%s examples) computed on every example",
                         split, "unknown number of" if count is None else count)


class Executor(tfx_statistics_gen.Executor):
    """TFX's StatisticsGen executor, given a sample rate for each split above the cap."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.EXAMPLES_KEY])
        exclude_splits = json_utils.loads(
            exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY) or "null") or []
        counts = split_counts(examples, exclude_splits)
        rates = sample_rates(counts, int(exec_properties.get(MAX_EXAMPLES_KEY) or 0))
        _log_rates(counts, rates)
        if rates:
            exec_properties = {**exec_properties,
                               standard_component_specs.SAMPLE_RATE_BY_SPLIT_KEY:
                                   json_utils.dumps(rates)}
        super().Do(input_dict, output_dict, exec_properties)
