"""Fixtures shared by the integration modules: a service under test per module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.intake_harness import IntakeUnderTest
from tests.support import Stack


@pytest.fixture(scope="module")
async def intake(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[IntakeUnderTest]:
    """Intake running alone in a fresh world of its own (the two-hubs topology), one per
    test module."""
    harness = await IntakeUnderTest.start(stack, tmp_path_factory.mktemp("intake"))
    yield harness
    await harness.stop()
