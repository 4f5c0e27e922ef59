"""Write the Prometheus-operator PrometheusRule of deploy/k8s/base from the alert rules.

    python -m deploy.k8s.prometheus_rule            # rewrites deploy/k8s/base/prometheus-rule.yaml
    python -m deploy.k8s.prometheus_rule --check    # exit 1 if that file is stale

The rules live in one place, ``deploy/prometheus/rules/mash-alerts.yml`` (unit-tested with
promtool, documented in the README); the PrometheusRule's ``spec`` is that file's content,
so the two cannot drift: tests/unit/test_kubernetes.py fails when the committed file
differs from this output. Multi-line strings (the PromQL) are written as literal blocks:
kustomize rewrites folded ones (``>-``) with more-indented lines, changing their text.
``--runbook-base`` points the ``runbook_url`` links at your README, as
deploy/prometheus/runbooks.py does for the plain rules files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from deploy.prometheus.runbooks import render as render_runbooks

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules" / "mash-alerts.yml"
TARGET = REPO / "deploy" / "k8s" / "base" / "prometheus-rule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules/mash-alerts.yml by
#   python -m deploy.k8s.prometheus_rule
# Do not edit: change the rules file and run it again (a test fails while they differ).
# If your Prometheus selects rules by label (ruleSelector), add it in an overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: mash-alerts
  labels:
    app.kubernetes.io/part-of: mash-router
spec:
"""


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key; multi-line strings as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render(rules_text: str, runbook_base: str | None = None) -> str:
    """The PrometheusRule manifest whose ``spec`` is the rules file's content."""
    if runbook_base is not None:
        rules_text = render_runbooks(rules_text, runbook_base)
    rules: Any = yaml.safe_load(rules_text)
    if not isinstance(rules, dict) or set(rules) != {"groups"}:
        raise ValueError("the rules file must hold exactly one key, 'groups'")
    body = yaml.dump(rules, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return HEADER + "".join(f"  {line}" if line.strip() else line for line in body.splitlines(True))


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--runbook-base", help="absolute URL of README.md for runbook links")
    parser.add_argument("--output", type=Path, default=TARGET, help="file to write")
    args = parser.parse_args(argv)
    text = render(RULES.read_text(encoding="utf-8"), args.runbook_base)
    if args.check:
        if not args.output.exists() or args.output.read_text(encoding="utf-8") != text:
            print(f"{args.output} is stale: python -m deploy.k8s.prometheus_rule", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
