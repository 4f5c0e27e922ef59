"""The image's entry point maps its arguments to one program, as compose files and
Kubernetes manifests expect: a service, the lag exporter, or the mash CLI; else usage."""

from __future__ import annotations

import argparse

import pytest

from deploy.image import entrypoint
from deploy.image.entrypoint import MASH_COMMANDS, SERVICES, UsageError, command_for
from deploy.local import pipeline
from mash.cli import build_parser

PY = "/opt/mash/bin/python"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_name_runs_that_service(service: str) -> None:
    assert command_for([service], PY) == [PY, "-m", f"services.{service}"]


def test_the_lag_exporter_runs_its_module() -> None:
    assert command_for(["lag-exporter"], PY) == [PY, "-m", "mash.lag_exporter"]


@pytest.mark.parametrize(
    "args",
    [
        ["db", "migrate"],
        ["topics", "--apply"],
        ["simulate", "--count", "5", "--to-kafka"],
        ["--help"],
        ["--version"],
    ],
)
def test_mash_commands_and_options_go_to_the_cli_with_every_argument(args: list[str]) -> None:
    assert command_for(args, PY) == [PY, "-m", "mash", *args]


@pytest.mark.parametrize("args", [[], [""], ["intak"], ["bash"], ["Intake"]])
def test_nothing_or_an_unknown_word_is_a_usage_error(args: list[str]) -> None:
    with pytest.raises(UsageError):
        command_for(args, PY)


def test_main_prints_the_usage_and_exits_2_without_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert entrypoint.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:")
    assert all(service in err for service in SERVICES)


def test_the_mash_commands_are_the_clis_own() -> None:
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(MASH_COMMANDS) == sorted(commands.choices)


def test_the_services_and_tools_are_those_the_local_pipeline_runs() -> None:
    assert entrypoint.SERVICES == pipeline.SERVICES
    assert entrypoint.TOOLS == pipeline.TOOLS
