"""The shipped Prometheus config, alert rules and Grafana dashboard: promtool's checks and
rule unit tests pass, every alert is tested, timed and explained with an absolute runbook
link, and the dashboard passes a structural lint (data source and job variables, no
hard-coded uid or job). (No broker needed: these read files.)"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.local.pipeline import LAG_EXPORTER
from deploy.prometheus.runbooks import DEFAULT_BASE, render_all
from services.common.settings import DEFAULT_METRICS_PORTS, Settings
from tests.support import REPO

PROMETHEUS = REPO / "deploy/prometheus"
GRAFANA = REPO / "deploy/grafana"
OPERATING = REPO / "README.md"


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule shipped under deploy/prometheus/rules/."""
    rules: list[dict[str, Any]] = []
    for path in sorted((PROMETHEUS / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


def test_promtool_checks_the_config_and_rules_and_runs_the_rule_tests() -> None:
    result = subprocess.run(
        [str(PROMETHEUS / "check.sh")], capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "valid prometheus config file syntax" in output
    assert f"SUCCESS: {len(alert_rules())} rules found" in output
    assert output.rstrip().endswith("SUCCESS")  # the rule unit tests


def rule_tests() -> list[dict[str, Any]]:
    """Every case of the rules' unit tests (deploy/prometheus/tests/)."""
    cases: list[dict[str, Any]] = []
    for path in sorted((PROMETHEUS / "tests").glob("*.test.yml")):
        cases += yaml.safe_load(path.read_text())["tests"]
    return cases


def test_every_alert_has_a_firing_unit_test_and_a_runbook_section() -> None:
    fired: set[str] = set()
    for case in rule_tests():
        fired |= {t["alertname"] for t in case["alert_rule_test"] if t.get("exp_alerts")}
    headings = {
        line.lstrip("#").strip().lower()
        for line in OPERATING.read_text().splitlines()
        if line.startswith("### ")
    }
    rules = alert_rules()
    assert len(rules) >= 6
    for rule in rules:
        name = rule["alert"]
        assert name in fired, f"{name} has no test in which it fires"
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        # An absolute link (Alertmanager, PagerDuty and Grafana show it as a link).
        url = urlsplit(rule["annotations"]["runbook_url"])
        assert url.scheme == "https", name
        assert url.netloc, name
        assert rule["annotations"]["runbook_url"] == f"{DEFAULT_BASE}#{name.lower()}"
        assert name.lower() in headings, f"README.md (Operating it) explains {name}"


def minutes(text: str) -> int:
    """``"6m"`` -> 6."""
    assert re.fullmatch(r"\d+m", text), text
    return int(text[:-1])


def readme_alert_table() -> dict[str, tuple[str, str]]:
    """README's alert table: {alert: (severity, after)}."""
    section = OPERATING.read_text().split("\n### Alerts\n", 1)[1].split("\n### ", 1)[0]
    table: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| \[(\w+)\]\(#(\w+)\) \| (\w+) \| [^|]+ \| ([^|]+) \|$", line)
        if match:
            name, anchor, severity, after = match.groups()
            assert anchor == name.lower(), line
            table[name] = (severity, after.strip())
    return table


def test_each_alerts_timing_is_pinned_and_the_readme_table_agrees() -> None:
    """One unit-test case per alert says "(onset Am, fires Bm)": silent one evaluation
    before B, firing at B; README's table says B - A ("at once" for 0) and the severity."""
    pinned: dict[str, int] = {}
    for case in rule_tests():
        match = re.search(r"\(onset (\d+m), fires (\d+m)\)$", case["name"])
        if not match:
            continue
        onset, fires = (minutes(m) for m in match.groups())
        name = case["name"].split(" ", 1)[0]
        assert name not in pinned, f"{name} is pinned twice"
        checks = [t for t in case["alert_rule_test"] if t["alertname"] == name]
        silent = {minutes(t["eval_time"]) for t in checks if not t.get("exp_alerts")}
        firing = {minutes(t["eval_time"]) for t in checks if t.get("exp_alerts")}
        assert fires in firing, case["name"]
        assert fires - 1 in silent, case["name"]
        assert not any(onset <= t < fires for t in firing), case["name"]
        pinned[name] = fires - onset
    rules = {r["alert"]: r for r in alert_rules()}
    assert set(pinned) == set(rules), "every alert has one timing case"
    table = readme_alert_table()
    assert set(table) == set(rules), "README's alert table lists every alert, and only those"
    for name, after in pinned.items():
        severity, written = table[name]
        assert severity == rules[name]["labels"]["severity"], name
        assert written == ("at once" if after == 0 else f"{after} min"), name


def test_the_readme_states_each_alerts_delay_as_the_rules_do() -> None:
    """Each alert's section agrees with its row (MashCommitStalled once said 5 minutes while
    the rule fired after 7)."""
    text = OPERATING.read_text()
    for name, (severity, after) in readme_alert_table().items():
        section = text.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        assert section.startswith(f"*{severity}.*"), name
        if after.endswith(" min"):
            spelled = after.replace(" min", " minutes")
            assert spelled in " ".join(section.split()), f"{name}: README says {after}?"


def test_the_runbook_links_can_be_pointed_at_your_readme(tmp_path: Path) -> None:
    base = "https://git.example.org/mash-router/-/blob/main/README.md"
    (written,) = render_all(base, tmp_path)
    rendered = yaml.safe_load(written.read_text())["groups"]
    urls = {
        r["alert"]: r["annotations"]["runbook_url"]
        for g in rendered
        for r in g["rules"]
        if "alert" in r
    }
    assert urls == {r["alert"]: f"{base}#{r['alert'].lower()}" for r in alert_rules()}
    checked = subprocess.run(
        ["promtool", "check", "rules", str(written)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with pytest.raises(ValueError, match="absolute"):
        render_all("README.md", tmp_path)


def test_the_lag_alerts_read_the_lag_exporters_series() -> None:
    """Lag that vanishes with a dead worker cannot alert on it: the exporter's can."""
    rules = {r["alert"]: r["expr"] for r in alert_rules()}
    assert "kafka_consumergroup_lag" in rules["MashConsumerLagGrowing"]
    assert "mash_consumergroup_stalled_seconds" in rules["MashCommitStalled"]
    for name in ("MashConsumerLagGrowing", "MashCommitStalled"):
        assert "mash_consumer_lag_messages" not in rules[name], name
        assert "mash_consumer_last_commit_age_seconds" not in rules[name], name


def test_the_scrape_config_covers_the_services_and_the_lag_exporter_on_their_ports() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    targets = {s["labels"]["service"]: s["targets"] for s in job["static_configs"]}
    assert targets == {
        "intake": ["127.0.0.1:9101"],
        "screening": ["127.0.0.1:9102"],
        "routing": ["127.0.0.1:9103"],
        "notifications": ["127.0.0.1:9104"],
        LAG_EXPORTER: [f"127.0.0.1:{Settings().lag_exporter_port}"],
    }
    assert set(targets) == {*DEFAULT_METRICS_PORTS, LAG_EXPORTER}


#: How a panel, target, variable or annotation names its data source.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: PromQL words that are not metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "offset", "bool", "inf", "nan",
}  # fmt: skip


def selectors(expr: str) -> Iterator[tuple[str, str]]:
    """(metric name, label matchers) of every series selector in a PromQL expression."""
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    for match in re.finditer(r"(?<![\w.$\"])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", text):
        name, matchers = match.group(1), match.group(2) or ""
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or name.lower() in PROMQL_WORDS or name.isdigit():
            continue  # a function call or an operator
        if text[: match.start()].rstrip().endswith(("[", "{")):
            continue  # a duration or label name inside brackets
        yield name, matchers


def test_selectors_are_found_in_promql() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{job=~"$job", hub=~"$hub"}[$__rate_interval]))'
        ' + on (hub) max(b_total offset 1h) and up{job=~"$job"}'
    )
    assert list(selectors(expr)) == [
        ("a_bucket", '{job=~"$job", hub=~"$hub"}'),
        ("b_total", ""),
        ("up", '{job=~"$job"}'),
    ]


def dashboard() -> dict[str, Any]:
    """The shipped dashboard."""
    board: dict[str, Any] = json.loads((GRAFANA / "dashboards/mash-ops.json").read_text())
    return board


def board_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target, query variable and annotation."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            inner = re.fullmatch(r"label_values\((.*), *\w+\)", query)
            yield f"variable {variable['name']}", inner.group(1) if inner else query
    for annotation in board["annotations"]["list"]:
        yield f"annotation {annotation['name']}", annotation["expr"]


def test_the_dashboard_can_be_imported_into_any_grafana() -> None:
    """Structural lint in the manner of Grafana's dashboard-linter (not installable here):
    data source and job come from variables, so the file fits any Grafana and any job name."""
    board = dashboard()
    text = json.dumps(board)
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/mash.yml").read_text())[
        "datasources"
    ]
    assert source["uid"] not in text, "no data source uid written into the dashboard"
    assert not re.search(r'job\s*=\s*\\?"(?!\$)', text.replace("=~", "~")), "no job name"
    # Import: one Prometheus input, which becomes the data source variable's default.
    (wanted,) = board["__inputs"]
    assert (wanted["type"], wanted["pluginId"]) == ("datasource", "prometheus")
    requires = {(r["type"], r["id"]) for r in board["__requires"]}
    assert ("datasource", "prometheus") in requires
    panel_types = {p["type"] for p in board["panels"] if p["type"] != "row"}
    assert {t for kind, t in requires if kind == "panel"} == panel_types
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables)[:2] == ["datasource", "job"]
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    assert ds["current"]["value"] == f"${{{wanted['name']}}}"
    job = variables["job"]
    assert job["type"] == "query"
    assert re.fullmatch(r"label_values\(\w+, *job\)", job["query"]["query"])
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
            assert variable["refresh"] == 2, variable["name"]  # follows the time range
    for annotation in board["annotations"]["list"]:
        assert annotation["datasource"] == DATASOURCE, annotation["name"]
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    queries = list(board_queries(board))
    assert len(queries) > 25
    for where, expr in queries:
        found = list(selectors(expr))
        assert found, where
        for name, matchers in found:
            if where.startswith("variable job"):
                continue  # the variable that lists the jobs
            assert re.search(r'\bjob=~"\$job\|?"', matchers), f"{where}: {name} without $job"


def test_the_dashboard_ranges_follow_the_scrape_rhythm() -> None:
    """rate() and increase() over a time series use $__rate_interval (at least four
    scrapes whatever the zoom); fixed windows only in single-figure panels."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            for window in re.findall(r"\[([^\]]+)\]", target["expr"]):
                if panel["type"] == "timeseries":
                    assert window == "$__rate_interval", panel["title"]


def test_the_dashboard_has_a_sound_layout_and_says_what_each_panel_shows() -> None:
    board = dashboard()
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
        if panel["type"] in ("timeseries", "stat", "bargauge"):
            assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
    titles = {p["title"] for p in panels}
    # What the duty manager came for, at a glance.
    for wanted in (
        "Children waiting",
        "Clocks overdue",
        "Waiting in $hub, by queue and RAG",
        "Decisions by outcome",
        "Published → queue item and outcome feedback (pipeline latency)",
        "Dead letters by reason",
        "Consumer lag (events waiting)",
    ):
        assert wanted in titles
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    assert re.search(r"histogram_quantile\(0\.99, .*mash_pipeline_latency_seconds_bucket", exprs)
    # The lag panels read the exporter, whose series outlive a dead worker.
    lag = {p["title"]: p["targets"][0]["expr"] for p in panels if p.get("targets")}
    assert "kafka_consumergroup_lag" in lag["Consumer lag (events waiting)"]
    assert "mash_consumergroup_stalled_seconds" in lag["No progress on a lagging partition"]
