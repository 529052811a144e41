"""Feature selection: an excluded feature leaves the Transform, the served model and the online builder."""
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from common import serving_contract as contract
from common.errors import UsageError
from components import features, preprocessing, trainer
from components.features import MODEL_FEATURES, OnlineFeatureBuilder, selected_features
from ledger.feature_selection import features_to_exclude, with_exclusions
from pipeline.configs import load_config
from synthetic_transactions import random_stream
from test_preprocessing import analyze, pipeline_schema, raw_data  # noqa: F401
from test_trainer import make_fn_args

# The card's profile (a whole feature group), a terminal rate and a categorical feature.
EXCLUDED = features.FEATURE_GROUPS["card_profile"] + ("terminal_fraud_rate_7d", "channel")


# ---------------------------------------------------------------------------
# The selection and its config.

def test_selected_features_keep_the_model_features_order_without_the_excluded():
    selected = selected_features(EXCLUDED)
    assert selected == tuple(name for name in MODEL_FEATURES if name not in EXCLUDED)


def test_an_unknown_or_total_exclusion_is_refused():
    with pytest.raises(ValueError, match="amonut"):
        selected_features(["amonut"])
    with pytest.raises(ValueError, match="no feature"):
        selected_features(MODEL_FEATURES)


def test_config_file_errors_name_the_file_and_the_feature(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("features:\n  exclude: [amount, card_colour]\n")
    with pytest.raises(UsageError, match=rf"{path}.*card_colour"):
        load_config(str(path))
    path.write_text("features:\n  exclude: [channel]\n")
    assert load_config(str(path)).features.exclude == ("channel",)


def test_features_below_the_value_share_are_excluded():
    rows = [{"name": "amount", "value_share": 0.5}, {"name": "channel", "value_share": 0.004},
            {"name": "is_night", "value_share": 0.0}, {"name": "hour_of_day", "value_share": 0.01}]
    assert features_to_exclude(rows, 0.01) == ["channel", "is_night"]
    with pytest.raises(ValueError, match="nothing would be left"):
        features_to_exclude(rows, 0.9)
    config = with_exclusions({"trainer": {"epochs": 2}, "features": {}}, ["channel"])
    assert config == {"trainer": {"epochs": 2}, "features": {"exclude": ["channel"]}}


def test_select_features_command_writes_a_config_run_accepts(tmp_path, capsys):
    from cli.main import main

    report = tmp_path / "report.json"
    report.write_text('{"features": [{"name": "amount", "value_share": 0.9},'
                      ' {"name": "channel", "value_share": 0.001}]}')
    base = tmp_path / "base.yaml"
    base.write_text("trainer:\n  epochs: 2\n")
    out = tmp_path / "selected.yaml"
    assert main(["select-features", "--report", str(report), "--min-value-share", "0.01",
                 "--config", str(base), "--out", str(out)]) == 0
    assert "excluded 1 of 2 features" in capsys.readouterr().out
    assert yaml.safe_load(out.read_text()) == {"trainer": {"epochs": 2},
                                               "features": {"exclude": ["channel"]}}
    config = load_config(str(out))
    assert config.features.exclude == ("channel",) and config.trainer.epochs == 2


# ---------------------------------------------------------------------------
# Online: the engine computes only what the model takes.

def test_the_online_builder_computes_the_selected_features_only():
    stream = random_stream(600)
    full, selected = OnlineFeatureBuilder(), OnlineFeatureBuilder(selected_features(EXCLUDED))
    kept = set(features.PASSTHROUGH_FEATURES) | set(selected_features(EXCLUDED))
    for txn in stream:
        expected = {k: v for k, v in full.update(txn).items() if k in kept}
        assert selected.update(txn) == expected
    # The profile group is not computed at all: no card keeps its state.
    assert all(card.profile is None for card in selected._cards.values())


def test_without_terminal_features_no_terminal_state_is_kept():
    without = [name for name in MODEL_FEATURES if not name.startswith("terminal_fraud_rate_")]
    builder = OnlineFeatureBuilder(without)
    for txn in random_stream(200):
        builder.update(txn)
    assert not builder._terminals and not builder._awaiting_label


# ---------------------------------------------------------------------------
# Transform and the served model.

@pytest.fixture(scope="module")
def selected_model(raw_data, tmp_path_factory):  # noqa: F811
    """run_fn on the shared examples with a Transform that excludes EXCLUDED."""
    root = tmp_path_factory.mktemp("selected")
    os.symlink(raw_data["root"] / "examples", root / "examples")
    transform_output = analyze(str(root / "examples" / "Split-train" / "*"), pipeline_schema(),
                               str(root / "transform_graph"), str(root / "tmp"), EXCLUDED)
    fn_args = make_fn_args({"root": root}, root / "out")
    trainer.run_fn(fn_args)
    return transform_output, tf.saved_model.load(fn_args.serving_model_dir)


def test_excluded_features_leave_the_transform_output(selected_model):
    transform_output, _ = selected_model
    outputs = set(transform_output.transformed_feature_spec())
    for name in EXCLUDED:
        assert not set(preprocessing.output_names(name)) & outputs, name
    assert preprocessing.model_features_of(outputs) == selected_features(EXCLUDED)


def test_the_served_signatures_take_only_the_selected_features(selected_model, raw_data):  # noqa: F811
    _, loaded = selected_model
    raw_inputs = loaded.signatures[contract.SERVING_RAW].structured_input_signature[1]
    assert set(raw_inputs) == set(selected_features(EXCLUDED))
    rows = raw_data["eval_rows"][:16]
    stripped = [{k: v for k, v in row.items() if k not in EXCLUDED} for row in rows]

    def score(batch):
        serialized = tf.constant([features.to_example(r).SerializeToString() for r in batch])
        return loaded.signatures[contract.SERVING_DEFAULT](
            examples=serialized)[contract.OUTPUT_KEY].numpy()

    # A request without the excluded features is scored, as one with them.
    np.testing.assert_allclose(score(stripped), score(rows), rtol=1e-6)
    assert np.all((score(stripped) > 0) & (score(stripped) < 1))
