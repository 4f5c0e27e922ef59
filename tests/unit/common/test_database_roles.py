"""services/common/database_roles.yaml: it loads, it refuses grants that break the rules
(a service writing another's table, a read without its reason), the plan is exact, the
stack script reads the same role names, and the README's table is the file's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.postgres_access import database_roles as stack_role_names
from services.common.database_roles import (
    PUBLIC,
    ROLES_FILE,
    Privilege,
    RolesError,
    SchemaObject,
    coverage_problems,
    load_roles,
    privilege_changes,
    readme_block,
    wanted_privileges,
)

REPO = Path(__file__).resolve().parents[3]


def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ROLES_FILE.read_text())
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_file_loads_with_a_role_per_service_the_cli_and_the_purge_job() -> None:
    doc = load_roles()
    assert doc.migrator == "mash_migrator"
    assert doc.group_roles == [
        "mash_intake",
        "mash_screening",
        "mash_routing",
        "mash_notifications",
        "mash_cli",
        "mash_retention",
    ]
    # The known cross-service reads are explicit, with their reasons.
    assert set(doc.get("mash_intake").reads) == {"queue_items"}
    assert set(doc.get("mash_routing").reads) == {"feedback"}
    assert not doc.get("mash_notifications").reads


def test_the_stack_script_reads_the_same_role_names() -> None:
    doc = load_roles()
    assert stack_role_names() == (doc.migrator, doc.group_roles)


def test_writing_another_services_table_is_refused(tmp_path: Path) -> None:
    data = raw()
    data["roles"][3]["tables"]["contacts"] = ["select"]  # notifications on intake's table
    with pytest.raises(RolesError, match="contacts is intake's"):
        load_roles(write(tmp_path, data))


def test_a_read_of_a_shared_or_own_table_is_not_a_cross_service_read(tmp_path: Path) -> None:
    data = raw()
    data["roles"][0]["reads"]["contacts"] = "its own"
    with pytest.raises(RolesError, match="another service's table"):
        load_roles(write(tmp_path, data))


def test_a_sequence_without_insert_on_its_table_is_refused(tmp_path: Path) -> None:
    data = raw()
    data["roles"][4]["sequences"].append("outbox_id_seq")  # the CLI inserts no outbox row
    with pytest.raises(RolesError, match="inserts no outbox"):
        load_roles(write(tmp_path, data))


def test_an_unknown_privilege_is_refused(tmp_path: Path) -> None:
    data = raw()
    data["roles"][0]["tables"]["contacts"] = ["select", "truncate"]
    with pytest.raises(RolesError, match="contacts"):
        load_roles(write(tmp_path, data))


def test_the_plan_revokes_what_the_file_does_not_grant_and_grants_what_it_does() -> None:
    doc = load_roles()
    objects = [
        SchemaObject(name, "table", doc.migrator) for name in doc.tables if name != "feedback"
    ]
    wanted = wanted_privileges(doc, "mash", objects)
    # feedback does not exist (yet): nothing is planned on it.
    assert not [p for p in wanted if p.name == "feedback"]
    stray = Privilege("mash_notifications", "table", "contacts", "SELECT")
    current = (wanted - {Privilege("mash_intake", "table", "queue_items", "SELECT")}) | {
        stray,
        Privilege(PUBLIC, "database", "mash", "TEMPORARY"),
    }
    assert [str(c) for c in privilege_changes(wanted, current)] == [
        "revoke TEMPORARY on database mash from PUBLIC",
        "revoke SELECT on table contacts from mash_notifications",
        "grant SELECT on table queue_items to mash_intake",
    ]
    assert privilege_changes(wanted, wanted) == []


def test_coverage_names_both_directions() -> None:
    doc = load_roles()
    objects = [SchemaObject(name, "table", doc.migrator) for name in doc.tables]
    objects += [SchemaObject(name, "sequence", doc.migrator) for name in doc.sequences]
    assert coverage_problems(doc, objects) == []
    objects = [o for o in objects if o.name != "contacts"]
    objects.append(SchemaObject("new_table", "table", doc.migrator))
    assert coverage_problems(doc, objects) == [
        "table new_table is not in the roles file",
        "roles file names table contacts, which does not exist",
    ]


def test_the_readme_table_is_the_files() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme_block(load_roles()) in readme, "run: mash db roles --readme README.md"


def test_the_purge_job_may_delete_and_blank_but_never_add_rows() -> None:
    purge = load_roles().get("mash_retention")
    assert purge.tables["raw_payloads"] == ("select", "update", "delete")
    assert purge.tables["outbox"] == ("select", "update")
    assert [t for t, p in purge.tables.items() if "insert" in p] == ["audit_log"]
