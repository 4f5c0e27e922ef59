"""The committed JSON Schema files and AsyncAPI document match the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import export
from schemas.types import CE_TYPES
from services.common.topics import FEEDBACK_AGENCIES

SCHEMAS_DIR = Path(export.__file__).resolve().parent
ASYNCAPI = SCHEMAS_DIR / "asyncapi.yaml"
FIX = "run `python -m schemas.export` and commit the files under schemas/json/"

TOPICS = {
    "mash.inbound.police-notifications.v1",
    "mash.inbound.referrals.v1",
    "mash.inbound.case-status.v1",
    "mash.practitioner-decisions.v1",
    "mash.queue-updates.v1",
    "mash.contacts.v1",
    "mash.decisions.v1",
    "mash.queue.{hub}.{queue}.v1",
    "mash.routed.v1",
    "mash.feedback.{agency}.v1",
    "mash.notifications.schools.v1",
    "mash.sla.breaches.v1",
    "mash.deadletter.v1",
}


@pytest.mark.parametrize("name", sorted(export.render_all()))
def test_exported_schema_matches_models(name: str) -> None:
    """Each committed schema file is exactly what the models produce now."""
    path = export.JSON_DIR / name
    assert path.is_file(), f"{path} is missing: {FIX}"
    assert path.read_text(encoding="utf-8") == export.render_all()[name], (
        f"{path} has drifted from the pydantic models: {FIX}"
    )


def test_no_stale_schema_files() -> None:
    """No schema file is left over from a model that no longer exists."""
    assert export.drifted() == [], f"drifted files: {export.drifted()}; {FIX}"


def test_schema_files_are_draft_07_with_id_and_short_title() -> None:
    """Each file declares its dialect (draft-07, which generators read), a stable $id naming
    the ce_type, and the model's short name as title (what generators name the type)."""
    for model, ce_type in CE_TYPES.items():
        schema = json.loads((export.JSON_DIR / f"{ce_type}.schema.json").read_text())
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert schema["$id"] == f"urn:uk:gov:mash:schema:{ce_type}"
        assert schema["title"] == model.__name__
        assert "$defs" not in json.dumps(schema), ce_type
        assert schema["additionalProperties"] is False, model.__name__


def test_check_detects_drift_and_write_repairs_it(tmp_path: Path) -> None:
    """--check exits 1 on a changed, missing or extra file; a plain run fixes all three."""
    assert export.main(["--dir", str(tmp_path)]) == 0
    assert export.main(["--check", "--dir", str(tmp_path)]) == 0
    first = sorted(tmp_path.iterdir())[0]
    first.write_text(first.read_text() + " ")
    (tmp_path / "uk.gov.mash.referral.v1.schema.json").unlink()
    (tmp_path / "uk.gov.mash.old.v1.schema.json").write_text("{}\n")
    assert set(export.drifted(tmp_path)) == {
        first.name,
        "uk.gov.mash.referral.v1.schema.json",
        "uk.gov.mash.old.v1.schema.json",
    }
    assert export.main(["--check", "--dir", str(tmp_path)]) == 1
    assert export.main(["--dir", str(tmp_path)]) == 0
    assert export.drifted(tmp_path) == []


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_asyncapi_covers_every_topic_and_event_type() -> None:
    """asyncapi.yaml has a channel per topic, a message per ce_type, and no broken $ref."""
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert document["asyncapi"].startswith("3.")
    assert {channel["address"] for channel in document["channels"].values()} == TOPICS
    messages = document["components"]["messages"]
    assert {message["name"] for message in messages.values()} == set(CE_TYPES.values())
    for message in messages.values():
        assert message["payload"]["$ref"] == f"./json/{message['name']}.schema.json"
    for ref in _refs(document):
        if ref.startswith("#/"):
            target: Any = document
            for part in ref[2:].split("/"):
                target = target[part]
        else:
            assert (SCHEMAS_DIR / ref).is_file(), ref


def test_asyncapi_names_every_feedback_agency() -> None:
    """The feedback channel's agency parameter lists exactly the agencies notifications
    publishes to, so an upstream team reading the contract finds its topic."""
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    agencies = document["channels"]["feedback"]["parameters"]["agency"]["enum"]
    assert agencies == list(FEEDBACK_AGENCIES)


#: What the product consumes, and as which Faust consumer group.
CONSUMER_GROUPS = {
    "receivePoliceNotifications": "mash-intake",
    "receiveReferrals": "mash-intake",
    "receiveCaseStatus": "mash-intake",
    "receivePractitionerDecisions": "mash-screening",
    "receiveQueueUpdates": "mash-routing",
}


def _resolve(document: Any, node: Any) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_asyncapi_servers_are_the_local_stacks_listeners() -> None:
    """The servers are where the local stack listens: plaintext 19092, SASL_SSL with
    SCRAM-SHA-512 on 19094, mutual TLS on 19096 (deploy/local/stack.py)."""
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    servers = {
        server["host"]: [_resolve(document, s)["type"] for s in server.get("security", [])]
        for server in document["servers"].values()
    }
    assert servers == {
        "127.0.0.1:19092": [],
        "127.0.0.1:19094": ["scramSha512"],
        "127.0.0.1:19096": ["X509"],
    }


def test_asyncapi_messages_have_kafka_key_bindings() -> None:
    """Every message says what its Kafka key is (the key rule of docs/contract.md)."""
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    for name, message in document["components"]["messages"].items():
        key = message["bindings"]["kafka"]["key"]
        assert key["type"] == "string", name
        assert key["description"], name


def test_asyncapi_consuming_operations_name_their_consumer_group() -> None:
    """Each receive operation has a Kafka binding naming the consumer group that reads it,
    and no other operation is a receive."""
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    receives = {
        name: _resolve(document, operation["bindings"])["kafka"]
        for name, operation in document["operations"].items()
        if operation["action"] == "receive"
    }
    assert {name: binding["groupId"]["enum"] for name, binding in receives.items()} == {
        name: [group] for name, group in CONSUMER_GROUPS.items()
    }
    assert all("clientId" in binding for binding in receives.values())
