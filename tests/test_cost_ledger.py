"""The cost ledger of a local run: every component measured and priced, in MLMD and cost.json."""
import json
import math
import os

import pytest
import yaml

from common.errors import UsageError
from pipeline import configs, cost_ledger, mlmd_queries
from pipeline.configs import CostConfig

ZERO_PRICES = {"vcpu_hour": 0, "memory_gb_hour": 0, "storage_gb_month": 0, "gpu_hour": 0}


def _run_ledger(pipeline_run, after: int, until=None):
    """(cost.json of the run made of executions in (after, until], MLMD executions by node)."""
    executions = {node: execution for node, _, execution in pipeline_run.executions(after, until)}
    store = mlmd_queries.open_store(pipeline_run.metadata_path)
    run_id = mlmd_queries.run_id_of(store, max(e.id for e in executions.values()))
    path = os.path.join(pipeline_run.pipeline_root, "runs", run_id, cost_ledger.COST_FILE)
    with open(path) as f:
        return json.load(f), executions


def test_every_component_of_a_run_is_measured_and_priced(pipeline_run):
    assert pipeline_run.result.exit_code == 0, pipeline_run.result.stderr
    ledger, executions = _run_ledger(pipeline_run, 0, pipeline_run.last_execution)
    components = {c["name"]: c for c in ledger["components"]}
    assert set(components) == set(executions)
    for name, component in components.items():
        assert not component["cached"], name  # the first run on new data
        assert component["cpu_seconds"] > 0 and component["cost"] > 0, component
        assert component["wall_seconds"] > 0 and component["peak_memory_mb"] > 0, component
    assert components["Trainer"]["artifact_bytes"] > 0
    assert math.isclose(ledger["total_cost"], sum(c["cost"] for c in components.values()))
    assert ledger["currency"] == "USD" and ledger["price_source"]
    # The run's summary ends with its total and its three most expensive components.
    last = pipeline_run.result.stdout.strip().splitlines()[-1]
    top = sorted(components.values(), key=lambda c: -c["cost"])[:3]
    assert last.startswith(f"cost of this run: USD {ledger['total_cost']:.6f}; most expensive: ")
    assert last.endswith(", ".join(f"{c['name']} USD {c['cost']:.6f}" for c in top))
    # The figures MLMD holds are the ledger's (MLMD keeps six decimal places).
    for name, execution in executions.items():
        stored = cost_ledger.stored_cost(execution, name)
        assert stored is not None and cost_ledger.currency_of(execution) == "USD"
        for key in ("cached", "wall_seconds", "cpu_seconds", "peak_memory_mb",
                    "artifact_bytes", "cost"):
            assert getattr(stored, key) == pytest.approx(components[name][key], rel=1e-4,
                                                         abs=1e-6), (name, key)


def test_a_rerun_costs_nothing_for_cached_components_and_zero_prices_cost_zero(
        pipeline_run, pushed_model, run_riskpipe, tmp_path):
    with open(pipeline_run.config_file) as f:
        config = yaml.safe_load(f)
    config["cost"] = ZERO_PRICES
    config_file = tmp_path / "zero-prices.yaml"
    config_file.write_text(yaml.safe_dump(config))
    before = mlmd_queries.last_execution_id(pipeline_run.metadata_path)
    result = run_riskpipe(pipeline_run.run_args(config_file=str(config_file)))
    assert result.exit_code == 0, result.stderr
    ledger, executions = _run_ledger(pipeline_run, before)
    states = {node: mlmd_queries.state_name(e) for node, e in executions.items()}
    for component in ledger["components"]:
        assert component["cost"] == 0, component
        assert component["cached"] == (states[component["name"]] == "cached")
        if component["cached"]:
            assert component["cpu_seconds"] == component["wall_seconds"] == 0, component
    assert states["Trainer"] == "cached" and ledger["total_cost"] == 0
    assert "cost of this run: USD 0.000000" in result.stdout


def test_price_model_follows_the_opencost_formula():
    cost = CostConfig(vcpu_hour=2.0, memory_gb_hour=0.5, storage_gb_month=3.0, gpu_hour=10.0,
                      gpus=1.0, storage_months=2.0)
    measured = cost_ledger._Measured(wall_seconds=1800, cpu_seconds=7200,
                                     peak_rss=4 * cost_ledger.GB)
    # 2 CPU hours, 4 GB for half an hour, 1 GB kept two months, one GPU half an hour.
    assert cost_ledger.price(cost, measured, cost_ledger.GB) == pytest.approx(
        2 * 2.0 + 4 * 0.5 * 0.5 + 1 * 3.0 * 2 + 1 * 0.5 * 10.0)
    assert cost_ledger.price(CostConfig(**ZERO_PRICES), measured, cost_ledger.GB) == 0


@pytest.mark.parametrize("section, key", [
    ({"vcpu_hour": -0.1}, "cost.vcpu_hour"),
    ({"memory_gb_hour": "cheap"}, "cost.memory_gb_hour"),
    ({"gpu_hour": float("nan")}, "cost.gpu_hour"),
    ({"storage_gb_month": True}, "cost.storage_gb_month"),
    ({"tpu_hour": 1.0}, "unknown key 'tpu_hour'"),
])
def test_a_bad_price_names_its_key(tmp_path, section, key):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"cost": section}))
    with pytest.raises(UsageError, match=key):
        configs.load_config(str(path))
