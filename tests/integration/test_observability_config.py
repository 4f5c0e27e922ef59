"""The shipped Prometheus config, alert rules and Grafana dashboard: promtool's checks and
rule unit tests pass, every alert is tested and explained, and the dashboard is wired to the
datasource its provisioning creates. (No broker needed: these read files.)"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import yaml

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


def test_every_alert_has_a_firing_unit_test_and_a_runbook_section() -> None:
    fired: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
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
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == name.lower()
        assert name.lower() in headings, f"README.md (Operating it) explains {name}"


def test_the_scrape_config_covers_the_four_services_on_their_default_ports() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    targets = {s["labels"]["service"]: s["targets"] for s in job["static_configs"]}
    assert targets == {
        "intake": ["127.0.0.1:9101"],
        "screening": ["127.0.0.1:9102"],
        "routing": ["127.0.0.1:9103"],
        "notifications": ["127.0.0.1:9104"],
    }


def test_the_dashboard_uses_the_provisioned_datasource_and_a_sound_layout() -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/mash.yml").read_text())[
        "datasources"
    ]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/mash.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    board = json.loads((GRAFANA / "dashboards/mash-ops.json").read_text())
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
            assert target["expr"].strip(), panel["title"]
    titles = {p["title"] for p in panels}
    # What the duty manager came for, at a glance.
    for wanted in (
        "Children waiting",
        "Clocks overdue",
        "Waiting in $hub, by queue and RAG",
        "Decisions by outcome",
        "Received → routed (end to end)",
        "Dead letters by reason",
        "Consumer lag (events waiting)",
    ):
        assert wanted in titles
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    assert re.search(r"histogram_quantile\(0\.9, .*mash_end_to_end_seconds_bucket", exprs)
