"""README's metric tables ("Operating it" > "Metrics") list exactly what the processes
register: every series a service or the lag exporter exports, with its labels, and nothing
that is not exported."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from mash.lag_exporter import ExporterState, LagSnapshot, PartitionLag, build_registry
from services.common.health import (
    Bounds,
    HealthCollector,
    HealthState,
    PartitionState,
    ProbeSnapshot,
)
from services.common.metrics import ServiceMetrics

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()
#: prometheus-client's default collectors; README names them as families, not row by row.
DEFAULTS = ("process_", "python_")

Table = dict[str, frozenset[str]]


def readme_tables() -> list[Table]:
    """The tables of the Metrics section, each as {metric: its labels}."""
    section = README.split("\n### Metrics\n", 1)[1].split("\n### ", 1)[0]
    tables: list[Table] = []
    current: Table | None = None
    for line in section.splitlines():
        if not line.startswith("| `"):
            current = None
            continue
        if current is None:
            current = {}
            tables.append(current)
        name, labels = (cell.strip() for cell in line.strip("|").split("|")[:2])
        current[name.strip("`")] = frozenset(x.strip() for x in labels.split(",") if x.strip())
    return tables


def exported(registry: CollectorRegistry, wrappers: list[MetricWrapperBase]) -> Table:
    """What ``registry`` exports, named as scraped (a counter with ``_total``), with the
    label names of its wrapper, or of its samples for a custom collector."""
    declared = {
        (w._name, w._type): frozenset(w._labelnames)  # no public accessor for label names
        for w in wrappers
    }
    table: Table = {}
    for family in registry.collect():
        if family.name.startswith(DEFAULTS):
            continue
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = declared.get((family.name, family.type))
        if labels is None:
            labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        table[name] = labels
    return table


def service_registry() -> tuple[CollectorRegistry, list[MetricWrapperBase]]:
    """A service's registry as the runtime builds it, with a probe round measured so the
    health collector's labelled series have samples."""
    metrics = ServiceMetrics("routing")
    state = HealthState(
        Bounds(
            max_lag=1,
            max_commit_age_seconds=1.0,
            max_probe_age_seconds=1.0,
            max_loop_stall_seconds=1.0,
            startup_grace_seconds=1.0,
        )
    )
    state.publish(
        ProbeSnapshot(
            taken_at=0.0,
            database_ok=True,
            database_error=None,
            broker_ok=True,
            broker_error=None,
            assigned=1,
            partitions=(PartitionState("mash.decisions.v1", 0, 5, 5, 0, 0.0),),
        )
    )
    metrics.registry.register(HealthCollector(state))
    wrappers = [w for w in vars(metrics).values() if isinstance(w, MetricWrapperBase)]
    return metrics.registry, wrappers


def exporter_registry() -> CollectorRegistry:
    """The lag exporter's registry with one round measured."""
    state = ExporterState(poll_seconds=10, timeout=10)
    state.publish(
        LagSnapshot(
            0.0,
            (PartitionLag("mash-routing", "mash.decisions.v1", 0, 5, 3, 0, 0.0),),
            (("mash.decisions.v1", 0, 5),),
        )
    )
    return build_registry(state)


def test_the_services_table_lists_every_series_a_service_exports_with_its_labels() -> None:
    services = readme_tables()[0]
    registry, wrappers = service_registry()
    assert services == exported(registry, wrappers)


def test_the_lag_exporter_table_lists_every_series_it_exports_with_its_labels() -> None:
    tables = readme_tables()
    assert len(tables) == 2, "README lists the lag exporter's series in a table of their own"
    assert tables[1] == exported(exporter_registry(), [])


def test_the_tables_are_read() -> None:
    services, exporter = readme_tables()
    assert services["mash_decisions_total"] == {"outcome", "rag", "hub"}
    assert services["mash_report_age_seconds"] == frozenset()
    assert services["mash_pipeline_latency_seconds"] == {"stage"}
    assert "kafka_consumergroup_lag" in exporter
