"""Process entry point shared by the four services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.common.runtime import ServiceRuntime
from services.common.topology import load_topology


def run_service(service: str, build: Callable[[ServiceRuntime], Any]) -> None:
    """Build ``service`` on a fresh runtime, create every product topic, run until stopped."""
    runtime = ServiceRuntime(service)
    build(runtime)
    hubs = load_topology(runtime.settings.topology).hub_ids
    runtime.run(runtime.topics.all_specs(hubs, runtime.settings.partitions))
