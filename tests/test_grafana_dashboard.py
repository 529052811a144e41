"""The serving dashboard (kubeflow/grafana/riskpipe-serving.json), checked offline: it
parses, has its template variables, queries only metrics riskpipe serve exports (their
names in common/serving_contract.py) and takes its data source from a variable."""
import json
import os
import re

import pytest

from common import serving_contract as contract

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "kubeflow", "grafana", "riskpipe-serving.json")

HISTOGRAMS = (contract.REQUEST_LATENCY, contract.RUNTIME_LATENCY, contract.SCORE)
EXPORTED = {contract.REQUEST_COUNT, contract.LOAD_ATTEMPT_COUNT, contract.MODEL_CPU_SECONDS,
            contract.FEATURE_VALUES, contract.FEATURE_VALUE_SUM, contract.FEATURE_MISSING,
            *HISTOGRAMS,
            *(name + suffix for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count"))}
# PromQL words that are neither metrics nor followed by "(" like functions are.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "inf", "nan"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    with open(DASHBOARD) as handle:
        return json.load(handle)


def _panels(panels):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _datasources(node):
    """Every `datasource` value anywhere in the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasources(item)


def metric_names(expr: str) -> set:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)        # string literals
    text = re.sub(r"\{[^}]*\}", "", text)                    # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                   # range and subquery windows
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)                  # dashboard variables
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        followed_by = text[match.end():].lstrip()[:1]
        if followed_by != "(" and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def _variable_metrics(variable: dict) -> set:
    query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    found = re.fullmatch(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{[^}]*\})?\s*,"
                         r"\s*\w+\s*\)", query)
    assert found, f"variable {variable['name']}: not label_values(metric, label): {query}"
    return {found.group(1)}


def test_the_metric_name_extractor_reads_promql():
    assert metric_names('sum by (version, le) (increase(riskpipe_serving_score_bucket'
                        '{version=~"$version"}[1d]))') == {"riskpipe_serving_score_bucket"}
    assert metric_names('sum(rate(:tensorflow:serving:request_count{status="OK"}[5m])) / '
                        'sum(rate(other_total[$window]))') == {":tensorflow:serving:request_count",
                                                               "other_total"}


def test_dashboard_has_the_template_variables(dashboard):
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert {"datasource", "version", "feature"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["version"]["multi"] and variables["version"]["includeAll"]
    assert _variable_metrics(variables["version"]) <= EXPORTED
    assert _variable_metrics(variables["feature"]) == {contract.FEATURE_VALUES}


def test_every_query_names_only_exported_metrics(dashboard):
    used = set()
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            names = metric_names(target["expr"])
            assert names, f"panel {panel['title']!r}: no metric in {target['expr']}"
            assert names <= EXPORTED, f"panel {panel['title']!r}: {names - EXPORTED} not exported"
            used |= names
    # The panels the drift monitor reads: score histogram, traffic, CPU, feature mean, missing.
    assert {contract.SCORE + "_bucket", contract.REQUEST_COUNT, contract.MODEL_CPU_SECONDS,
            contract.FEATURE_VALUE_SUM, contract.FEATURE_VALUES, contract.FEATURE_MISSING} <= used


def test_panels_show_scores_and_features_per_version(dashboard):
    exprs = {panel["title"]: " ".join(target["expr"] for target in panel.get("targets", []))
             for panel in _panels(dashboard["panels"])}
    per_version = [title for title, expr in exprs.items() if expr]
    for title in per_version:
        assert "$version" in exprs[title], title
    assert any('feature="$feature"' in expr for expr in exprs.values())
    assert any(panel["type"] in ("heatmap", "bargauge") and contract.SCORE in exprs[panel["title"]]
               for panel in _panels(dashboard["panels"]))


def test_the_data_source_is_a_variable_not_a_fixed_uid(dashboard):
    sources = list(_datasources(dashboard))
    assert sources, "no panel names a data source"
    for source in sources:
        uid = source["uid"] if isinstance(source, dict) else source
        assert uid in ("${datasource}", "$datasource"), source
    assert "__inputs" not in dashboard  # an export for sharing would pin an instance's source
