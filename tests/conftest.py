"""Session fixtures: the real Kafka broker and PostgreSQL, started by the project's own
stack script (deploy/local/stack.py), or external ones named by KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL."""

from __future__ import annotations

import pytest

from tests.support import Stack, stack_up


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running broker and database (started if needed)."""
    return stack_up()
