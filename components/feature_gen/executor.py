"""FeatureGen executor: raw transaction partitions -> featurized tf.Examples, split out of time.

The Beam pipeline reads every daily CSV, groups the transactions by terminal
(TerminalHistory: fraud rates from labels known in time), then by card
(CardState: windows, velocity, geo, the card's usual behaviour), and writes
one tf.Example per transaction into `Split-train/` (days before the eval
start) or `Split-eval/` as gzipped TFRecords. Features are computed over the
whole timeline before the split, so the first eval days still see their
train-period history.

All state lives in the per-key DoFn calls, so the same pipeline runs on the
DirectRunner or a distributed runner. `featurize` runs it without TFX.
"""
import datetime
import os
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

from common.errors import DataError, UsageError
from components import features
from components.feature_gen.raw_data import (RawDataError, check_header, list_partitions,
                                             parse_date, read_transactions)
from components.transactions import Transaction

EVAL_START_DATE_KEY = "eval_start_date"
EVAL_DAYS_KEY = "eval_days"
TRAIN, EVAL = "train", "eval"
SPLITS = (TRAIN, EVAL)
METRICS_NAMESPACE = "riskpipe.FeatureGen"
FILE_PREFIX = "data_tfrecord"
_BEAM_STEP_SUFFIX = re.compile(r"( \[while running '[^']*'\])+$")

# Between Beam steps a transaction travels as a plain tuple of its fields
# (`tuple(txn)`), which Beam encodes natively: twice as fast as a pickled one.
Row = Tuple[Any, ...]


def num_examples_property(split: str) -> str:
    """The custom property of FeatureGen's Examples that holds a split's number of examples."""
    return f"num_examples_{split}"


def resolve_eval_start(partition_dates: Sequence[datetime.date], eval_start_date: str,
                       eval_days: int, input_base: str) -> datetime.date:
    """The first eval day: `eval_start_date`, or the last `eval_days` days of the data.

    Both splits must hold at least one day of partitions.
    """
    first, last = min(partition_dates), max(partition_dates)
    if eval_start_date:
        try:
            start = parse_date(eval_start_date)
        except ValueError as err:
            raise UsageError(f"feature_gen.eval_start_date: {err}") from err
    else:
        if eval_days < 1:
            raise UsageError(f"feature_gen.eval_days must be at least 1, got {eval_days}")
        start = last - datetime.timedelta(days=eval_days - 1)
    if not first < start <= last:
        raise DataError(
            f"{input_base}: the raw data spans {first} to {last}; an eval split starting "
            f"{start} leaves the {'train' if start <= first else 'eval'} split empty "
            "(set feature_gen.eval_start_date or eval_days)")
    return start


def _day_start(day: datetime.date) -> int:
    return int(datetime.datetime(day.year, day.month, day.day,
                                 tzinfo=datetime.timezone.utc).timestamp())


def _check_unique(ordered: Sequence[Transaction], key_name: str, key: str) -> None:
    """A transaction id repeated within one key's sorted transactions is an error."""
    for before, after in zip(ordered, ordered[1:]):
        if before.transaction_id == after.transaction_id:
            raise RawDataError(f"column 'transaction_id': '{after.transaction_id}' appears more "
                               f"than once ({key_name} {key})")


def rows_by_terminal(path: str) -> Iterator[Tuple[str, Row]]:
    """A raw file's transactions as (terminal_id, row): parsed and keyed in one step."""
    for txn in read_transactions(path):
        yield txn.terminal_id, tuple(txn)


def terminal_features(
        keyed: Tuple[str, Iterable[Row]]
) -> Iterator[Tuple[str, Tuple[Row, Dict[str, float]]]]:
    """(terminal_id, rows) -> (card_id, (row, terminal features)) for each transaction."""
    terminal_id, rows = keyed
    ordered = sorted(((Transaction(*row), row) for row in rows),
                     key=lambda item: features.sort_key(item[0]))
    _check_unique([txn for txn, _ in ordered], "terminal", terminal_id)
    history = features.TerminalHistory()
    for txn, row in ordered:
        yield txn.card_id, (row, history.features_for(txn))
        history.record(txn)


class CardFeaturesFn(beam.DoFn):
    """(card_id, [(transaction row, terminal features)]) -> serialized tf.Examples, by split.

    Examples of transactions at or after `eval_start` (Unix seconds) go to the
    EVAL output, the others to the main (train) output.
    """

    def __init__(self, eval_start: int):
        super().__init__()
        self._eval_start = eval_start
        self._counters = {
            split: beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"examples_{split}")
            for split in SPLITS}

    def process(self, keyed: Tuple[str, Iterable[Tuple[Row, Dict[str, float]]]]):
        card_id, items = keyed
        ordered = sorted(((Transaction(*row), terminal) for row, terminal in items),
                         key=lambda item: features.sort_key(item[0]))
        _check_unique([txn for txn, _ in ordered], "card", card_id)
        card = features.CardState()
        for txn, terminal in ordered:
            feats = features.transaction_features(txn, card.features_for(txn), terminal)
            card.record(txn)
            example = features.serialize_example(feats)
            split = EVAL if txn.timestamp >= self._eval_start else TRAIN
            self._counters[split].inc()
            yield example if split == TRAIN else beam.pvalue.TaggedOutput(EVAL, example)


def build_pipeline(pipeline: beam.Pipeline, files: Sequence[str], split_uris: Dict[str, str],
                   eval_start: int) -> None:
    """Adds the featurization of `files` into `split_uris` to `pipeline`."""
    examples = (
        pipeline
        | "RawFiles" >> beam.Create(list(files))
        | "SpreadFiles" >> beam.Reshuffle()
        | "ParseByTerminal" >> beam.FlatMap(rows_by_terminal)
        | "GroupByTerminal" >> beam.GroupByKey()
        | "TerminalFeatures" >> beam.FlatMap(terminal_features)
        | "GroupByCard" >> beam.GroupByKey()
        | "CardFeatures" >> beam.ParDo(CardFeaturesFn(eval_start)).with_outputs(EVAL, main=TRAIN))
    for split in SPLITS:
        _ = examples[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
            os.path.join(split_uris[split], FILE_PREFIX), file_name_suffix=".gz")


def run_featurize(pipeline: beam.Pipeline, input_base: str, split_uris: Dict[str, str],
                  eval_start_date: str = "", eval_days: int = 7) -> Dict[str, Any]:
    """Featurizes the raw partitions under `input_base` with `pipeline`.

    Returns {'eval_start_date': 'YYYY-MM-DD', 'train': n, 'eval': n}. Raises
    RawDataError (a DataError) naming file, line and column for bad raw data.
    """
    partitions = list_partitions(input_base)
    for _, path in partitions:
        check_header(path)
    start = resolve_eval_start([day for day, _ in partitions], eval_start_date, eval_days,
                               input_base)
    build_pipeline(pipeline, [path for _, path in partitions], split_uris, _day_start(start))
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as err:  # Beam re-raises worker errors with its own wrapping.
        raw_error = _raw_data_error(err)
        if raw_error is None:
            raise
        raise raw_error from err
    counts = _split_counts(result)
    for split in SPLITS:
        if not counts[split]:
            raise DataError(f"{input_base}: no transaction falls in the {split} split "
                            f"(eval starts {start}, UTC)")
    return {"eval_start_date": start.isoformat(), **counts}


def _raw_data_error(err: Exception) -> Optional[RawDataError]:
    """The RawDataError inside a Beam failure, with its message restored, or None."""
    if isinstance(err, RawDataError):
        message = str(err)
    else:
        # Remote workers send the failure back as text holding the traceback.
        found = re.search(r"RawDataError: ([^\n]*)", str(err))
        if found is None:
            return None
        message = found.group(1)
    return RawDataError(_BEAM_STEP_SUFFIX.sub("", message.strip()))


def _split_counts(result) -> Dict[str, int]:
    counts = {split: 0 for split in SPLITS}
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    for counter in query["counters"]:
        split = counter.key.metric.name[len("examples_"):]
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[split] += value or 0
    return counts


def featurize(input_base: str, output_dir: str, eval_start_date: str = "", eval_days: int = 7,
              beam_args: Optional[List[str]] = None) -> Dict[str, Any]:
    """FeatureGen without TFX: writes <output_dir>/Split-train and Split-eval.

    Same Beam pipeline and result as the component; `beam_args` are Beam
    pipeline options (e.g. ['--direct_num_workers=2',
    '--direct_running_mode=multi_processing']).
    """
    split_uris = {split: os.path.join(output_dir, f"Split-{split}") for split in SPLITS}
    pipeline = beam.Pipeline(argv=list(beam_args or []))
    return run_featurize(pipeline, input_base, split_uris, eval_start_date, eval_days)


class Executor(base_beam_executor.BaseBeamExecutor):
    """The FeatureGen component's executor: an example source with 'train' and 'eval'."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        split_uris = {split: artifact_utils.get_split_uri([examples], split) for split in SPLITS}
        summary = run_featurize(
            self._make_beam_pipeline(),
            exec_properties[standard_component_specs.INPUT_BASE_KEY],
            split_uris,
            exec_properties.get(EVAL_START_DATE_KEY) or "",
            int(exec_properties.get(EVAL_DAYS_KEY) or 0))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")
        examples.set_string_custom_property("eval_start_date", summary["eval_start_date"])
        for split in SPLITS:
            examples.set_int_custom_property(num_examples_property(split), summary[split])
