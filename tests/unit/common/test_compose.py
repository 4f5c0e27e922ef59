"""docker-compose.yml parses and agrees with the no-Docker stack: the same Kafka version,
the four services, and the settings the services read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deploy.local.stack import KAFKA_VERSION
from services.common.settings import DEFAULT_METRICS_PORTS, Settings

REPO = Path(__file__).resolve().parents[3]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_kafka_image_is_the_pinned_version() -> None:
    image = compose()["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{KAFKA_VERSION}"


def test_every_service_runs_its_module_against_kafka_and_postgres() -> None:
    services = compose()["services"]
    for name, port in DEFAULT_METRICS_PORTS.items():
        service = services[name]
        command = service["command"]
        text = " ".join(command) if isinstance(command, list) else command
        assert f"python -m services.{name}" in text
        env = service["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert str(env["MASH_METRICS_PORT"]) == str(port)
    assert "postgres" in services


def test_the_lag_exporter_runs_beside_the_services_without_the_database() -> None:
    exporter = compose()["services"]["lag-exporter"]
    assert "python -m services.tools.lag_exporter" in exporter["command"]
    env = exporter["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    port = Settings().lag_exporter_port
    assert str(env["MASH_LAG_EXPORTER_PORT"]) == str(port)
    assert f"127.0.0.1:{port}:{port}" in exporter["ports"]
    # It reads offsets from the broker only: a database outage must not take it down.
    assert set(exporter["depends_on"]) == {"kafka"}
