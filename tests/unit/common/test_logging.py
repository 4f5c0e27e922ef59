"""Logs carry ids, never personal data: redaction is an allow-list."""

from __future__ import annotations

import json

import pytest

from services.common.logging import REDACTED, configure_logging, redact_unlisted_fields


def test_unlisted_fields_are_redacted_and_ids_kept() -> None:
    event = redact_unlisted_fields(
        None,
        "info",
        {
            "event": "contact_recorded",
            "contact_id": "c-1",
            "given_name": "Testchild",
            "date_of_birth": "2019-05-17",
            "narrative": "text",
            "partition": 3,
        },
    )
    assert event["contact_id"] == "c-1"
    assert event["partition"] == 3
    assert event["given_name"] == REDACTED
    assert event["date_of_birth"] == REDACTED
    assert event["narrative"] == REDACTED


@pytest.mark.usefixtures("restore_logging")
def test_configured_logger_writes_json_without_personal_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = configure_logging("intake", "INFO")
    log.info("contact_recorded", contact_id="c-2", family_name="Example-One")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "contact_recorded"
    assert record["service"] == "intake"
    assert record["contact_id"] == "c-2"
    assert "Example-One" not in line
