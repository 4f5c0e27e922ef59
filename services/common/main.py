"""Process entry point shared by the four services."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from services.common.runtime import ServiceRuntime
from services.common.settings import Settings, SettingsError, refuse_settings, settings_or_exit
from services.common.topics import TopicSpec
from services.common.topology import load_topology


def run_service(
    service: str,
    build: Callable[[ServiceRuntime], Any],
    own_topics: Callable[[Settings], Iterable[TopicSpec]] = lambda _: (),
) -> None:
    """Build ``service`` on a fresh runtime, create every product topic (and the service's
    own, e.g. table changelogs), run until stopped. Invalid settings (e.g. an inconsistent
    Kafka security setting or an unreadable certificate) stop it at once, exit code 2."""
    try:
        runtime = ServiceRuntime(service, settings_or_exit(service))
    except SettingsError as exc:  # the Kafka TLS material or a secret file does not load
        refuse_settings(service, exc)
    build(runtime)
    settings = runtime.settings
    hubs = load_topology(settings.topology).hub_ids
    runtime.run([*runtime.topics.all_specs(hubs, settings.partitions), *own_topics(settings)])
