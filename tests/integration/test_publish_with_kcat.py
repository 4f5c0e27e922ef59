"""The kcat command of docs/publishing.md publishes a referral the product accepts.

The command is read from the page (the fenced block after its ``tested:`` marker), so the
documentation cannot drift from what is tested. Only the broker address and the topic are
changed, to this test's broker and its isolated world's prefixed inbound topic; the rest
(headers, key, partitioner, the example file) runs as printed. The record must then decode
with the product's own CloudEvents decoder, validate as a Referral, sit on the partition a
Java client would choose for its key, and become a contact in a running intake.
"""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest
from aiokafka.partitioner import DefaultPartitioner

from schemas.cloudevents import decode, validate_data
from schemas.inbound import Referral
from services.common.topics import INBOUND_REFERRALS
from tests.external_tools import require_command
from tests.integration.intake_harness import IntakeUnderTest
from tests.support import REPO, Stack, fetch, partitions_of, read_messages

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "publishing.md"
MARKER = "<!-- tested: tests/integration/test_publish_with_kcat.py runs this command -->"
DOC_BROKER = "127.0.0.1:19092"
REFERRAL_TYPE = "uk.gov.mash.referral.v1"


def documented_command() -> str:
    """The shell command in the fenced block right after the marker in docs/publishing.md."""
    text = DOC.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"{DOC} must hold the marker exactly once"
    found = re.match(r"\s*```sh\n(.*?)\n```", text.split(MARKER, 1)[1], re.S)
    assert found is not None, f"no ```sh block right after the marker in {DOC}"
    return found.group(1)


def test_the_documented_command_is_a_kcat_publish_of_the_example() -> None:
    """What the page prints: kcat producing to the local broker's referrals topic, every
    required CloudEvents header, and the exporter's example referral as the value."""
    command = documented_command()
    assert command.startswith(f"kcat -P -b {DOC_BROKER} -t {INBOUND_REFERRALS} ")
    for header in ("ce_specversion=1.0", f"ce_type={REFERRAL_TYPE}", "ce_source=", "ce_id="):
        assert f"-H {header}" in command or f'-H "{header}' in command, header
    assert "-H content-type=application/json" in command
    example = "schemas/json/uk.gov.mash.referral.v1.example.json"
    assert command.rstrip().endswith(example)
    assert (REPO / example).is_file()


async def test_the_documented_kcat_command_publishes_an_accepted_referral(
    stack: Stack, intake: IntakeUnderTest
) -> None:
    """Run the page's command (on this world's topic): intake records a contact from it."""
    require_command("kcat", "kcat")
    topic = intake.world.topics(INBOUND_REFERRALS)
    command = documented_command()
    aimed = command.replace(f"-b {DOC_BROKER} ", f"-b {stack.bootstrap} ", 1).replace(
        f"-t {INBOUND_REFERRALS} ", f"-t {topic} ", 1
    )
    assert aimed.startswith(f"kcat -P -b {stack.bootstrap} -t {topic} ")
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", aimed],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    (record,) = await read_messages(stack.bootstrap, topic)
    headers = [(name, value) for name, value in record.headers]
    event = decode(record.value, headers)
    referral = validate_data(event, {REFERRAL_TYPE: Referral})
    assert event.type == REFERRAL_TYPE
    assert event.source == "urn:council:example:portal"
    assert event.time is not None
    assert dict(headers)["content-type"] == b"application/json"
    # The key rule: the key is the referral_id, on the partition a Java client would use.
    assert record.key == referral.referral_id.encode()
    partitions = await partitions_of(stack.bootstrap, topic)
    assert record.partition == DefaultPartitioner()(record.key, partitions, partitions)

    fate = await intake.fate(INBOUND_REFERRALS, record.partition, record.offset)
    assert fate.kind == "contact", fate
    assert fate.contact_id is not None
    rows = await fetch(
        intake.world.dsn,
        "SELECT source_event_id FROM contacts WHERE contact_id = $1",
        fate.contact_id,
    )
    assert [row["source_event_id"] for row in rows] == [event.id]
    contact = await intake.contact(fate.contact_id)
    assert [child["child_ref"] for child in contact["children"]] == [
        child.child_ref for child in referral.children
    ]
    assert contact["hub"] == "east-south", "the example's postcode, B11, is in the South"
