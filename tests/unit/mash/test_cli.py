"""The ``mash`` command line: help with examples, one-line errors, meaningful exit codes.
Nothing here needs a broker: what is checked happens before any connection."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mash.cli import main

UNREACHABLE = "127.0.0.1:1"


@pytest.mark.parametrize("command", ["replay", "simulate", "whatif", "topics"])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"mash {command}" in out


def test_simulate_help_states_the_simulators_assumptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for said in ("assumptions", "about 1,000 contacts a week", "Synthetic people only"):
        assert said in out
    assert "mash/simulation.yaml" in out


def test_the_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("replay", "simulate", "whatif", "topics"):
        assert command in out


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mash: error: ")
    return err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "required"),
        (["frobnicate"], "invalid choice"),
        (["replay", "--to-file", "x.jsonl"], "--from-topic --from-file is required"),
        (["replay", "--from-topic", "t", "--from-file", "f"], "not allowed with"),
        (["replay", "--from-topic", "t"], "needs --to-topic or --to-file"),
        (["replay", "--from-topic", "t", "--to-file", "x", "--since", "soon"], "cannot read time"),
        (["replay", "--from-topic", "t", "--to-file", "x", "--start-offset", "-1"], "negative"),
        (["simulate", "--seed", "7"], "--to-file --to-kafka is required"),
        (["simulate", "--to-kafka", "--weeks", "0"], "--weeks must be positive"),
        (["simulate", "--to-file", "x", "--rate", "5"], "--rate applies to --to-kafka"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert says in one_error_line(capsys)


def test_writing_into_an_inbound_topic_is_refused_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"topic": "mash.inbound.referrals.v1", "value_b64": ""}\n')
    argv = ["replay", "--bootstrap-servers", UNREACHABLE, "--prefix", "t9."]
    assert main([*argv, "--from-file", str(source)]) == 2
    assert "t9.mash.inbound.referrals.v1" in one_error_line(capsys)
    topic_to_topic = [*argv, "--from-topic", "mash.contacts.v1", "--to-topic"]
    for target in ("mash.practitioner-decisions.v1", "other.mash.queue-updates.v1"):
        assert main([*topic_to_topic, target]) == 2
        assert "--allow-inbound" in one_error_line(capsys)


def test_an_unreachable_broker_is_a_failure_not_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--bootstrap-servers", UNREACHABLE]
    assert main(["topics", *argv]) == 1
    assert "cannot reach Kafka" in one_error_line(capsys)
    target = str(tmp_path / "out.jsonl")
    assert main(["replay", *argv, "--from-topic", "mash.contacts.v1", "--to-file", target]) == 1
    assert "cannot reach Kafka" in one_error_line(capsys)


def test_simulate_to_a_file_is_reproducible_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    common = ["simulate", "--seed", "4", "--count", "60", "--bad-rate", "0.1", "--summary", "json"]
    assert main([*common, "--to-file", str(first)]) == 0
    assert '"contacts": 60' in capsys.readouterr().out
    assert main([*common, "--to-file", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert len(first.read_text().splitlines()) == 66
    capsys.readouterr()
    assert main([*common, "--to-file", str(first)]) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert main([*common, "--to-file", str(first), "--overwrite", "--seed", "5"]) == 0
    assert first.read_bytes() != second.read_bytes()


#: sha256 of ``mash simulate --seed 4 --count 200 --to-file FILE``, taken before the simulator
#: was split into its calibration, generator and command modules: the split changed no byte.
SEED_4_COUNT_200_SHA256 = "803ca7a153f84609ca162615857f5e66177c3ddbc02d8f18b24661b4cae63404"


def test_simulate_output_for_a_seed_is_pinned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sim.jsonl"
    argv = ["simulate", "--seed", "4", "--count", "200", "--summary", "none"]
    assert main([*argv, "--to-file", str(path)]) == 0
    capsys.readouterr()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SEED_4_COUNT_200_SHA256
