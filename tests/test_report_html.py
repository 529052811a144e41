"""The cost ledger's HTML page: names from the report cannot break it, and a real browser draws its charts.

The browser tests open the written page in headless Chromium (Debian's
`chromium`, installed by the `chromium` fixture when missing) and read the DOM
after the page's JavaScript ran.
"""
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from ledger.html_report import render_html, write_html

HOSTILE_NAME = "</script><!--<script>alert(1)</script>"
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def component(name, cost, cached=False):
    return {"name": name, "cached": cached, "wall_seconds": 12.5, "cpu_seconds": 20.25,
            "peak_memory_mb": 512.0, "artifact_bytes": 1_048_576, "cost": cost}


def model(version, blessed, pr_auc, cost_per_million_txns):
    return {"version": version, "blessed": blessed, "pushed": blessed, "training_cost": 0.0123,
            "cost_effectiveness": None if cost_per_million_txns is None else pr_auc / cost_per_million_txns,
            "metrics": {"roc_auc": 0.95, "pr_auc": pr_auc, "recall_at_1pct_fpr": 0.6,
                        "serving_cpu_ms_per_txn": 0.08, "serving_cpu_ms_per_txn_c1": 0.1,
                        "cost_per_million_txns": cost_per_million_txns}}


def feature(name, cost_share, value_share, candidate):
    return {"name": name, "group": "velocity", "cost_us_per_txn": 3.2, "cost_share": cost_share,
            "batch_cpu_share": None, "request_bytes": 16.0, "value_pr_auc": 0.012,
            "value_pr_auc_spread": 0.003, "value_roc_auc": 0.004, "value_share": value_share,
            "value_per_cost": value_share / cost_share, "cut_candidate": candidate}


def sample_report():
    """2 runs of 5 components (the second with a cached, free one), 3 models, 6 features."""
    names = ["feature_gen", "schema_gen", "transform", "trainer", "evaluator"]
    first = [component(name, 0.001 * (i + 1)) for i, name in enumerate(names)]
    second = [component("feature_gen", 0.0, cached=True)] + [component(n, 0.002) for n in names[1:]]
    return {
        "currency": "USD", "price_source": "list prices, 2024-06", "cut_threshold": 0.05,
        "cost_effectiveness_definition": "PR-AUC per USD of serving a million transactions",
        "runs": [
            {"run_id": "run-1", "started_at": "2024-06-01T10:00:00+00:00", "total_cost": 0.015,
             "total_cpu_seconds": 101.25, "total_wall_seconds": 62.5, "pushed_version": 1, "components": first},
            {"run_id": "run-2", "started_at": "2024-06-02T10:00:00+00:00", "total_cost": 0.008,
             "total_cpu_seconds": 81.0, "total_wall_seconds": 50.0, "pushed_version": None, "components": second},
        ],
        "models": [model(1, True, 0.71, 1.5), model(2, False, 0.69, 1.2), model(3, True, 0.74, None)],
        "features": [feature("amount", 0.30, 0.40, False), feature("merchant_risk", 0.25, 0.35, False),
                     feature("txn_count_1h", 0.20, 0.15, False), feature("device_age", 0.15, 0.07, False),
                     feature("ip_distance", 0.06, 0.02, True), feature("hour_of_day", 0.04, 0.01, True)],
    }


class Element:
    """A tag with its attributes, the id of its enclosing <figure> and the text directly inside it."""

    def __init__(self, tag, attrs, figure):
        self.tag, self.attrs, self.figure, self.text = tag, attrs, figure, ""

    @property
    def classes(self):
        return set((self.attrs.get("class") or "").split())


class Dom(HTMLParser):
    """A page's elements in document order, each with the id of the <figure> it is in."""

    def __init__(self, page):
        super().__init__()
        self.elements, self._open = [], []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        figure = attrs.get("id") if tag == "figure" else (self._open[-1].figure if self._open else None)
        element = Element(tag, attrs, figure)
        self.elements.append(element)
        if tag not in VOID_TAGS:
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open and self._open.pop().tag != tag:
            pass

    def handle_data(self, data):
        if self._open:
            self._open[-1].text += data

    def select(self, tag, cls=None, figure=None):
        return [e for e in self.elements if e.tag == tag and (cls is None or cls in e.classes)
                and (figure is None or e.figure == figure)]

    def by_id(self, element_id):
        return next(e for e in self.elements if e.attrs.get("id") == element_id)


# -- Without a browser ----------------------------------------------------------

def test_names_are_escaped_in_the_tables_and_the_json_round_trips():
    report = sample_report()
    report["features"][0]["name"] = HOSTILE_NAME
    page = render_html(report)

    assert html.escape(HOSTILE_NAME) in page
    assert HOSTILE_NAME not in page
    assert page.count("</script>") == 2  # only the page's own two script elements end
    data = Dom(page).by_id("report-data").text
    assert "<!--" not in data
    assert json.loads(data) == report


def test_tables_sort_features_by_value_per_cost_and_show_costs_in_currency():
    report = sample_report()
    report["features"][2]["value_per_cost"] = None
    dom = Dom(render_html(report))

    cells = [e.text for e in dom.select("td")]
    order = [name for name in cells if name in {f["name"] for f in report["features"]}]
    assert order == ["merchant_risk", "amount", "device_age", "ip_distance", "hour_of_day", "txn_count_1h"]
    assert "0.002000 USD" in cells  # a latest-run component's cost, to 4 significant digits
    assert report["cost_effectiveness_definition"] in [e.text for e in dom.select("dd")]


# -- In headless Chromium -------------------------------------------------------

def _run(command, env, timeout=600):
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def _tail(result):
    return (result.stderr or result.stdout).strip()[-300:]


def _install_chromium():
    """Installs Debian's chromium with apt-get, or skips the browser tests saying what failed."""
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed, and installing it with apt-get needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    try:
        result = _run(install, env)
        if result.returncode != 0:
            # A fresh image has no package lists yet: fetch them and try once more.
            update = _run(["apt-get", "update"], env)
            if update.returncode != 0:
                pytest.skip(f"chromium is not installed and `apt-get update` failed: {_tail(update)}")
            result = _run(install, env)
        if result.returncode != 0:
            pytest.skip(f"chromium is not installed and `apt-get install chromium` failed: {_tail(result)}")
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"chromium is not installed and apt-get could not install it: {error}")
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("apt-get installed chromium, but no `chromium` is on PATH")
    return path


@pytest.fixture(scope="module")
def chromium():
    return shutil.which("chromium") or _install_chromium()


def browser_dom(chromium, report, directory):
    """Writes the page for `report` into `directory`, opens it in Chromium and parses the DOM it ends with."""
    page = os.path.join(directory, "ledger.html")
    write_html(report, page)
    return page_dom(chromium, page, directory)


def page_dom(chromium, page, directory):
    """The DOM Chromium ends with after opening the page file and running its JavaScript."""
    profile = os.path.join(directory, "profile")
    result = _run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", f"file://{page}"],
                  env=os.environ, timeout=120)
    assert result.returncode == 0, result.stderr
    return Dom(result.stdout)


@pytest.fixture(scope="module")
def drawn(chromium, tmp_path_factory):
    """The sample report and the DOM Chromium drew for it."""
    report = sample_report()
    return report, browser_dom(chromium, report, str(tmp_path_factory.mktemp("sample")))


@pytest.fixture(scope="module")
def drawn_without_features(chromium, tmp_path_factory):
    """A pipeline root with runs but no models or feature table yet; a component has a hostile name."""
    report = sample_report()
    report["models"], report["features"] = [], []
    report["runs"][0]["components"][0]["name"] = HOSTILE_NAME
    return report, browser_dom(chromium, report, str(tmp_path_factory.mktemp("bare")))


def test_cost_chart_has_one_bar_per_paid_component_of_each_run(drawn):
    report, dom = drawn
    bars = dom.select("rect", "bar", figure="chart-cost-by-component")

    paid = [(run["run_id"], c["name"]) for run in report["runs"] for c in run["components"] if c["cost"] > 0]
    assert len(paid) == 9
    assert sorted((bar.attrs["data-run"], bar.attrs["data-component"]) for bar in bars) == sorted(paid)
    assert {e.text for e in dom.select("li", figure="chart-cost-by-component")} == {name for _, name in paid}
    assert any("USD" in e.text for e in dom.select("text", figure="chart-cost-by-component"))


def test_feature_chart_marks_exactly_the_cut_candidates(drawn):
    report, dom = drawn
    circles = dom.select("circle", "feature", figure="chart-feature-value-cost")

    assert len(circles) == len(report["features"]) == 6
    candidates = {c.attrs["data-feature"] for c in circles if "candidate" in c.classes}
    assert candidates == {f["name"] for f in report["features"] if f["cut_candidate"]} == {"ip_distance", "hour_of_day"}
    assert len(dom.select("line", "threshold", figure="chart-feature-value-cost")) == 2


def test_quality_chart_plots_models_with_both_values(drawn):
    _, dom = drawn
    circles = dom.select("circle", "model", figure="chart-quality-vs-serving-cost")

    assert {(c.attrs["data-version"], "blessed" in c.classes) for c in circles} == {("1", True), ("2", False)}
    assert not dom.select("p", "error") and not dom.select("p", "empty")


def test_charts_without_data_say_so_instead_of_drawing_an_empty_svg(drawn_without_features):
    _, dom = drawn_without_features

    for figure in ("chart-feature-value-cost", "chart-quality-vs-serving-cost"):
        assert not dom.select("svg", figure=figure)
        empty = dom.select("p", "empty", figure=figure)
        assert len(empty) == 1 and empty[0].text.strip()
    assert dom.select("rect", "bar", figure="chart-cost-by-component")


def test_a_hostile_name_reaches_the_chart_intact(drawn_without_features):
    _, dom = drawn_without_features

    components = {bar.attrs["data-component"] for bar in dom.select("rect", "bar")}
    assert HOSTILE_NAME in components
    assert not dom.select("p", "error")


def test_written_page_references_no_external_url(tmp_path):
    page = tmp_path / "ledger.html"
    write_html(sample_report(), str(page))
    text = page.read_text(encoding="utf-8")

    assert not re.search(r"https?://|@import|url\(", text)
    assert not [e for e in Dom(text).elements if "src" in e.attrs or "href" in e.attrs]
