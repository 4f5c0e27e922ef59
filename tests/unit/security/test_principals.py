"""The principals file (deploy/security/principals.yaml) cannot drift from the code, the
topologies, the stack script or the README; and ``acls apply`` plans exactly the file.

No broker here: tests/integration/test_security_acls.py proves the broker enforces it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deploy.local import stack
from deploy.security import acls
from deploy.security.principals import (
    PRINCIPALS_FILE,
    SUPER_USERS,
    Principal,
    PrincipalsError,
    PrincipalsFile,
    load,
    replace_readme_table,
)
from services.common import topics
from services.common.settings import Settings
from services.common.topology import TOPOLOGIES_DIR, load_topology
from services.screening.app import history_changelog_topic

REPO = Path(__file__).resolve().parents[3]
SERVICES = ("intake", "screening", "routing", "notifications")
DOC = load()


def test_the_readme_table_is_the_files() -> None:
    readme = (REPO / "README.md").read_text()
    assert replace_readme_table(readme, DOC) == readme, (
        "README's principal table is stale: run `python -m deploy.security.acls readme`"
    )


def test_the_stack_script_reads_the_same_principals_and_super_users() -> None:
    assert stack.PRINCIPALS_FILE.resolve() == PRINCIPALS_FILE.resolve()
    assert stack.principal_names() == [p.name for p in DOC.principals]
    assert set(stack.SUPER_USERS) == set(SUPER_USERS)


def _hubs() -> set[str]:
    return {h for path in TOPOLOGIES_DIR.glob("*.yaml") for h in load_topology(path.stem).hub_ids}


def test_every_hub_of_every_topology_has_a_principal_reading_only_its_own_queues() -> None:
    hub_principals = {p.name: p for p in DOC.principals if p.kind == "hub"}
    assert set(hub_principals) == {f"hub-{h}" for h in _hubs()}
    for hub in _hubs():
        p = hub_principals[f"hub-{hub}"]
        assert p.topics.read == (f"mash.queue.{hub}.*",)
        assert set(p.topics.write) == {topics.PRACTITIONER_DECISIONS, topics.QUEUE_UPDATES}
        assert p.groups.read == (f"hub-{hub}.*",)
        assert {b.operation for b in p.bindings()} == {"read", "write"}


def test_no_one_but_its_hub_reads_a_queue() -> None:
    for p in DOC.principals:
        if p.kind != "hub":
            assert not [t for t in p.topics.read if t.startswith("mash.queue.")], p.name


def _topic_names_in(package: str) -> tuple[set[str], set[str]]:
    """(topics the service consumes, topics it names otherwise) from its source: the
    constants of services.common.topics it imports, and consume_topic's second argument."""
    imported: set[str] = set()
    consumed: set[str] = set()
    for path in sorted((REPO / "services" / package).glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "services.common.topics":
                for alias in node.names:
                    value = getattr(topics, alias.name)
                    if isinstance(value, str):
                        imported.add(value)
                    elif alias.name == "queue_topic":
                        imported.add("mash.queue.*")
                    elif alias.name == "feedback_topic_of_source":
                        imported.add("mash.feedback.*")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "consume_topic"
                and isinstance(node.args[1], ast.Name)
            ):
                consumed.add(getattr(topics, node.args[1].id))
    return consumed, imported - consumed


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reads_and_writes_exactly_the_topics_its_code_does(service: str) -> None:
    consumed, produced = _topic_names_in(service)
    # Every service dead-letters what it cannot read (services/common/pipeline.py).
    produced.add(topics.DEAD_LETTER)
    p = DOC.get(service)
    product = {t for t in p.topics.read if t.startswith("mash.")}
    assert product == consumed
    assert {t for t in p.topics.write if t.startswith("mash.")} == produced


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_owns_its_faust_group_and_internal_topics(service: str) -> None:
    p = DOC.get(service)
    own = f"mash-{service}*"  # Faust's app id: mash-<service><MASH_GROUP_SUFFIX>
    assert p.groups.read == (own,)
    assert own in p.topics.read
    assert own in p.topics.write
    assert p.topics.create == (own,)  # the only topics a service may create


def test_the_screening_history_changelog_is_covered() -> None:
    name = history_changelog_topic(Settings()).name
    assert name.startswith("mash-screening")
    screening = DOC.get("screening")
    assert any(name.startswith(t.removesuffix("*")) for t in screening.topics.read)


def test_upstream_producers_write_one_inbound_topic_and_read_nothing_else() -> None:
    producers = {p.name: p for p in DOC.principals if p.kind == "producer"}
    assert {n: p.topics.write for n, p in producers.items()} == {
        "police-force": (topics.INBOUND_POLICE,),
        "council-portal": (topics.INBOUND_REFERRALS,),
        "case-system": (topics.INBOUND_CASE_STATUS,),
    }
    # The portal passes acknowledgements on to the members of the public who used it.
    assert {n: p.topics.read for n, p in producers.items()} == {
        "police-force": (),
        "council-portal": (topics.feedback_topic("public"),),
        "case-system": (),
    }


def test_a_partner_agency_reads_its_own_feedback_topic_and_nothing_else() -> None:
    agencies = [p for p in DOC.principals if p.kind == "agency"]
    assert agencies
    for p in agencies:
        agency = p.name.removeprefix("agency-")
        assert p.topics.read == (topics.feedback_topic(agency),)
        assert {(b.operation, b.resource_type) for b in p.bindings()} == {
            ("read", "topic"),
            ("read", "group"),
        }
        assert p.groups.read == (f"{p.name}.*",)


def test_the_lag_exporter_describes_and_never_reads() -> None:
    p = DOC.get("lag-exporter")
    assert {b.operation for b in p.bindings()} == {"describe"}
    assert p.groups.describe == ("mash-*",)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "principals.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (
            "principals:\n  - name: x\n    kind: hub\n    about: a\n    topics: {read: ['*']}\n",
            "read",
        ),
        ("principals:\n  - name: x\n    kind: hub\n    about: a\n    topics: {own: [t]}\n", "own"),
        ("principals:\n  - name: admin\n    kind: hub\n    about: a\n", "super users"),
        (
            "principals:\n  - name: x\n    kind: hub\n    about: a\n  - name: x\n    kind: hub\n"
            "    about: b\n",
            "twice",
        ),
    ],
)
def test_a_bad_file_is_refused_with_one_line(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(PrincipalsError, match=complaint):
        load(_write(tmp_path, text))


def test_the_stack_script_refuses_a_principal_it_cannot_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "principals:\n    - name: intake\n")
    with pytest.raises(stack.StackError, match="is written"):
        stack.principal_names(path)
    with pytest.raises(stack.StackError, match="reserved"):
        stack.principal_names(_write(tmp_path, "principals:\n  - name: broker\n"))


def test_plan_creates_what_is_missing_and_deletes_strays_of_listed_principals() -> None:
    doc = PrincipalsFile(
        principals=(
            Principal(name="a", kind="producer", about="x", topics={"write": ["t"]}),
            Principal(name="b", kind="agency", about="y"),
        )
    )
    wanted = acls.AclEntry("User:a", acls.RESOURCE_TOPIC, "t", acls.PATTERN_LITERAL, 4)
    stray = acls.AclEntry("User:b", acls.RESOURCE_TOPIC, "t", acls.PATTERN_LITERAL, 3)
    other = acls.AclEntry("User:someone", acls.RESOURCE_TOPIC, "t", acls.PATTERN_LITERAL, 3)
    changes = acls.plan(doc, {stray, other})
    assert changes.created == (wanted,)
    assert changes.deleted == (stray,)
    assert changes.unlisted == (other,)
    assert acls.plan(doc, {wanted, other}).empty
    assert acls.plan(doc, {wanted, other}, prune=True).deleted == (other,)
