"""The one structlog setup: JSON lines that carry ids, never personal data.

Redaction is an allow-list, like the firewall: a log field whose name is not known to be
safe (an id, a count, a topic coordinate...) is replaced by ``"[redacted]"``. A developer
who logs ``given_name=...`` by mistake leaks nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: Field names that may appear in a log line with their value.
SAFE_FIELDS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "service",
        "logger",
        "topic",
        "partition",
        "offset",
        "reason",
        "hub",
        "queue",
        "outcome",
        "kind",
        "level_number",
        "rag",
        "status",
        "deadline",
        "error_type",
        "attempt",
        "delay_seconds",
        "version",
        "exc_info",
        "exception",
        "source_system",
        "ce_type",
        "rule_set_version",
        "agency_type",
        "expected_offset",
        "security_protocol",
        "sasl_mechanism",
    }
)
#: Suffixes of field names that are always safe (identifiers, counts, durations).
SAFE_SUFFIXES = ("_id", "_ids", "_count", "_seconds", "_reference", "_key", "_total", "_port")
REDACTED = "[redacted]"


def redact_unlisted_fields(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: keep allow-listed fields, redact the value of every other."""
    for name in list(event_dict):
        if name in SAFE_FIELDS or name.endswith(SAFE_SUFFIXES):
            continue
        event_dict[name] = REDACTED
    return event_dict


def configure_logging(service: str, level: str = "INFO") -> structlog.stdlib.BoundLogger:
    """Set up JSON logging for ``service`` (stdlib loggers too) and return its logger."""
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            redact_unlisted_fields,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Third-party libraries (Faust, aiokafka) log through stdlib: render them as JSON too.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.INFO))
    # Kafka client chatter at INFO drowns the product's own lines.
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(service)
    return logger
