"""Session fixtures: the real Kafka broker and PostgreSQL, started by the project's own
stack script (deploy/local/stack.py), or external ones named by KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL; and the secured broker beside them (``stack.py up --secure``)."""

from __future__ import annotations

import pytest

from tests.support import SecureStack, Stack, secure_stack_up, stack_up


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running broker and database (started if needed)."""
    return stack_up()


@pytest.fixture(scope="session")
def secure_stack() -> SecureStack:
    """The secured broker (SASL_SSL, SCRAM-SHA-512, ACLs from deploy/security), started if
    needed, with the principals file applied."""
    return secure_stack_up()
