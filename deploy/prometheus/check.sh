#!/usr/bin/env bash
# Check the Prometheus config and alert rules, and run the rules' unit tests.
# Needs promtool (Debian: apt-get install prometheus). Run from anywhere:
#   deploy/prometheus/check.sh
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null; then
    echo "check.sh: promtool not found (Debian: apt-get install prometheus)" >&2
    exit 127
fi

promtool check config prometheus.yml
promtool check rules rules/*.yml
promtool test rules tests/*.test.yml
