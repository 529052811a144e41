"""Executor of riskpipe's StatisticsGen: TFDV statistics per split, large splits on a sample.

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
described from a sample of its serialized records, each kept with
probability max_examples / size: the sample holds about, not exactly,
max_examples. The sample is drawn before decoding, where TFDV's own
`sample_rate` decodes every record and then keeps or drops whole batches of
up to 1,000 of them, so records not sampled cost only their reading. A
record is kept by the CRC32 of its bytes: independent of its neighbours, and
the same records on every run over the same data. A split of unknown size
(CsvExampleGen records none; credit tables are small) or below the cap is
described from every row, so results on small data do not change. The
statistics' `num_examples` is then the sampled count: the real split sizes
are FeatureGen's properties.

Otherwise this is TFX's StatisticsGen executor: the same inputs, outputs,
file layout (`Split-<name>/FeatureStats.pb`) and `sample_rate_by_split`
property, with the stats options and the optional schema it takes.
"""
import os
import zlib
from typing import Any, Dict, List, Optional

import apache_beam as beam
import tensorflow_data_validation as tfdv
from absl import logging
from tfx import types
from tfx.components.statistics_gen.executor import (DEFAULT_FILE_NAME,
                                                    SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME)
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils

from components.feature_gen.executor import num_examples_property

MAX_EXAMPLES_KEY = "max_examples"
_TELEMETRY_DESCRIPTORS = ["StatisticsGen"]
_CRC_RANGE = 2 ** 32


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


def is_sampled(record: bytes, rate: float) -> bool:
    """Whether a serialized record belongs to the sample at `rate` (by its CRC32)."""
    return zlib.crc32(record) < rate * _CRC_RANGE


def _log_rates(counts: Dict[str, Optional[int]], rates: Dict[str, float]) -> None:
    for split, count in counts.items():
        if split in rates:
            logging.info("StatisticsGen: split %s has %d examples, sampled at rate %.4g",
                         split, count, rates[split])
        else:
            logging.info("StatisticsGen: split %s (%s examples) computed on every example",
                         split, "unknown number of" if count is None else count)


def _stats_options(input_dict: Dict[str, List[types.Artifact]],
                   exec_properties: Dict[str, Any]) -> tfdv.StatsOptions:
    """The configured StatsOptions, with the input schema if one is given."""
    options_json = exec_properties.get(standard_component_specs.STATS_OPTIONS_JSON_KEY)
    options = tfdv.StatsOptions.from_json(options_json) if options_json else tfdv.StatsOptions()
    if input_dict.get(standard_component_specs.SCHEMA_KEY):
        if options.schema:
            raise ValueError("StatisticsGen: a schema was given both as an input and in "
                             "stats_options; give one of them")
        options.schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])))
    return options


class Executor(base_beam_executor.BaseBeamExecutor):
    """StatisticsGen's executor: each split's statistics, the splits above the cap sampled."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.EXAMPLES_KEY])
        exclude_splits = json_utils.loads(
            exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY) or "null") or []
        counts = split_counts(examples, exclude_splits)
        if not counts:
            raise ValueError(f"StatisticsGen: no splits to describe in {examples.uri}")
        rates = sample_rates(counts, int(exec_properties.get(MAX_EXAMPLES_KEY) or 0))
        _log_rates(counts, rates)
        statistics = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.STATISTICS_KEY])
        statistics.split_names = artifact_utils.encode_split_names(list(counts))
        statistics.span = examples.span
        statistics.set_json_value_custom_property(
            SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,
            json_utils.dumps({split: rates.get(split, 1.0) for split in counts}))
        options = _stats_options(input_dict, exec_properties)
        with self._make_beam_pipeline() as pipeline:
            for split in counts:
                self._describe(pipeline, examples, split, rates.get(split), options,
                               artifact_utils.get_split_uri([statistics], split))

    @staticmethod
    def _describe(pipeline: beam.Pipeline, examples: types.Artifact, split: str,
                  rate: Optional[float], options: tfdv.StatsOptions, output_uri: str) -> None:
        tfxio = tfxio_utils.get_split_tfxio(examples=[examples], split=split,
                                            telemetry_descriptors=_TELEMETRY_DESCRIPTORS)
        records = pipeline | f"ReadRecords[{split}]" >> tfxio.RawRecordBeamSource()
        if rate is not None:
            records = records | f"Sample[{split}]" >> beam.Filter(is_sampled, rate)
        _ = (records
             | f"Decode[{split}]" >> tfxio.RawRecordToRecordBatch()
             | f"GenerateStatistics[{split}]" >> tfdv.GenerateStatistics(options)
             | f"WriteStatsOutput[{split}]" >> tfdv.WriteStatisticsToBinaryFile(
                 os.path.join(output_uri, DEFAULT_FILE_NAME)))
