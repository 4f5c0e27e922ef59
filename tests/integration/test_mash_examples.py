"""Every example in ``mash``'s help texts, and every README shell block marked
``<!-- runnable -->``, runs and exits 0, against an isolated world.

The examples are run as written, by bash (pipes included, ``set -o pipefail``), with one
change: any topic prefix or group suffix they name becomes the test world's, so they never
touch another world. Files an example expects the reader to bring (a draft rule set, a
calibration of their own) are stood in for by copies of the shipped ones.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mash.cli import build_parser
from mash.simulation import DEFAULT_CALIBRATION
from schemas import examples as ex
from schemas.cloudevents import encode_binary
from schemas.events import DeadLetter, DeadLetterHeader, DeadLetterReason, FieldError
from services.common.topics import DEAD_LETTER, INBOUND_REFERRALS
from services.screening.ruleset import RULESETS_DIR
from tests.support import REPO, Isolated, Stack, isolated_world, mash_env, publish

pytestmark = pytest.mark.integration

#: Files the examples name that the reader writes themselves, and the stand-ins here.
READERS_FILES = {
    "draft-rules.yaml": RULESETS_DIR / "default-v3.yaml",
    "my-mix.yaml": DEFAULT_CALIBRATION,
    "README.md": REPO / "README.md",  # mash db roles --readme rewrites the reader's copy
}
PREFIX = re.compile(r"(MASH_TOPIC_PREFIX=|--(?:source-|target-)?prefix[ =])(\S*)")
GROUP_SUFFIX = re.compile(r"MASH_GROUP_SUFFIX=\S*")
RUNNABLE = re.compile(r"<!-- runnable -->\s*\n```(?:sh|bash)\n(.*?)```", re.DOTALL)


def commands_in(block: str) -> list[str]:
    """The command lines of a shell block: continuations joined, comments dropped."""
    commands, current = [], ""
    for line in block.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += stripped
        if current.endswith("\\"):
            current = current[:-1].rstrip() + " "
            continue
        commands.append(current)
        current = ""
    return commands


def examples_section(help_text: str) -> str:
    """The indented lines under ``examples:`` in a help text."""
    _, found, after = help_text.partition("\nexamples:\n")
    section = []
    for line in after.splitlines() if found else []:
        if line.strip() and not line.startswith(" "):
            break
        section.append(line)
    return "\n".join(section)


def parsers(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, str]]:
    """(command, help text) of ``parser`` and every subcommand under it."""
    yield name, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from parsers(subparser, f"{name} {sub}")


def example_groups() -> dict[str, list[str]]:
    """Each help text's and each runnable README block's commands, in order (each group
    runs in a directory of its own: later commands use the files earlier ones wrote)."""
    groups: dict[str, list[str]] = {}
    for command, text in parsers(build_parser(), "mash"):
        examples = commands_in(examples_section(text))
        # A subcommand's actions may repeat its examples: run them once.
        if examples and examples not in groups.values():
            groups[f"{command} --help"] = examples
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for number, block in enumerate(RUNNABLE.findall(readme), start=1):
        groups[f"README runnable block {number}"] = commands_in(block)
    return groups


GROUPS = example_groups()


def in_world(command: str, world: Isolated) -> str:
    """``command`` with every prefix and group suffix it names made the world's."""
    command = PREFIX.sub(lambda m: m.group(1) + world.prefix, command)
    return GROUP_SUFFIX.sub(f"MASH_GROUP_SUFFIX=-{world.prefix.rstrip('.')}", command)


#: The dead letter the ``mash deadletters`` examples name.
EXAMPLE_DEAD_LETTER = "1b4e28ba-2fa1-5d6e-9b0c-3c0d5a6f7e81"


@pytest.fixture(scope="module")
async def world(stack: Stack) -> Isolated:
    """The examples' world, holding the dead letter the deadletters examples name."""
    world = await isolated_world(stack)
    referral = ex.referral(referral_id="REF-EXAMPLE-0001")
    del referral["children"]  # a schema violation a sender would fix and send again
    original = json.dumps(referral).encode()
    letter = DeadLetter(
        dead_letter_id=EXAMPLE_DEAD_LETTER,
        original_topic=world.topics(INBOUND_REFERRALS),
        partition=0,
        offset=0,
        original_key=base64.b64encode(b"REF-EXAMPLE-0001").decode(),
        original_value=base64.b64encode(original).decode(),
        headers=[
            DeadLetterHeader(key=k, value=base64.b64encode(v).decode())
            for k, v in (
                ("ce_specversion", b"1.0"),
                ("ce_id", b"example-referral-1"),
                ("ce_source", b"urn:council:portal:example"),
                ("ce_type", b"uk.gov.mash.referral.v1"),
            )
        ],
        reason=DeadLetterReason.SCHEMA_VIOLATION,
        errors=[FieldError(path="children", message="Field required")],
        service="intake",
        at=datetime(2026, 1, 6, 9, 30, tzinfo=UTC),
    )
    value, headers = encode_binary(
        event_id=EXAMPLE_DEAD_LETTER, source="urn:mash-router:intake", data=letter, time=letter.at
    )
    await publish(
        stack.bootstrap,
        [(world.topics(DEAD_LETTER), letter.original_topic.encode(), value, headers)],
    )
    return world


@pytest.fixture(scope="module")
def mash_on_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``mash``: this interpreter running the source tree."""
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "mash"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mash "$@"\n')
    script.chmod(0o755)
    return bin_dir


def test_the_examples_are_found() -> None:
    names = set(GROUPS)
    for command in ("replay", "simulate", "whatif", "topics"):
        assert f"mash {command} --help" in names
    assert any(name.startswith("README") for name in names)
    assert "mash whatif contacts.jsonl --candidate ./draft-rules.yaml" in [
        c for commands in GROUPS.values() for c in commands
    ]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_example_runs(
    group: str, world: Isolated, mash_on_path: Path, tmp_path: Path
) -> None:
    for name, shipped in READERS_FILES.items():
        shutil.copy(shipped, tmp_path / name)
    # The corrected referral a reader writes before a redrive (the deadletters examples).
    fixed = ex.referral(referral_id="REF-EXAMPLE-0001")
    (tmp_path / "fixed.json").write_text(json.dumps(fixed), encoding="utf-8")
    env = {
        **mash_env(world),
        "DATABASE_URL": world.dsn,  # redrive audits in the world's database
        "PATH": f"{mash_on_path}{os.pathsep}{os.environ['PATH']}",
    }
    for example in GROUPS[group]:
        command = in_world(example, world)
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{group}: {example}\n{done.stderr}"
