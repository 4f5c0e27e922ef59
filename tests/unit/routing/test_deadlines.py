"""Statutory clocks per queue: dates below are worked out by hand, reasoning alongside."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import pytest

from services.common.calendar import LONDON, WorkingCalendar
from services.routing.deadlines import (
    DEFAULT_CONFIG_PATH,
    DeadlineConfigError,
    calendar_for,
    clocks_met_by,
    deadlines_for,
    icpc_deadline,
    load_deadline_config,
    screening_decision_deadline,
)

CAL = WorkingCalendar()
CONFIG = load_deadline_config()


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def test_shipped_config_loads_with_domain_defaults() -> None:
    assert CONFIG.version == "default-v1"
    assert (
        CONFIG.clocks["acknowledge_referrer"].duration_for("red")
        == CONFIG.clocks["acknowledge_referrer"].default
    )
    assert CONFIG.clocks["assessment"].default is not None
    assert CONFIG.clocks["assessment"].default.working_days == 45
    assert CONFIG.clocks["icpc"].default is not None
    assert CONFIG.clocks["icpc"].default.working_days == 15
    assert load_deadline_config(DEFAULT_CONFIG_PATH) == CONFIG
    assert load_deadline_config(str(DEFAULT_CONFIG_PATH)) == CONFIG


def test_red_s47_strategy_discussion_is_4_clock_hours() -> None:
    # Decided Fri 27 Nov 2026 15:30 -> 19:30 the same evening: red clocks run 24/7.
    # Received 14:00 the same Friday -> acknowledgement Mon 30 Nov 14:00 (1 working day).
    due = deadlines_for(
        "s47", "red", None, london(2026, 11, 27, 14, 0), london(2026, 11, 27, 15, 30), CAL, CONFIG
    )
    assert due == {
        "acknowledge_referrer": london(2026, 11, 30, 14, 0),
        "strategy_discussion": london(2026, 11, 27, 19, 30),
    }


def test_amber_s47_strategy_discussion_is_1_working_day_over_christmas() -> None:
    # Practitioner override to s47 at amber, decided Thu 24 Dec 2026 11:00: Fri 25 Christmas,
    # weekend, Mon 28 Boxing Day (observed) -> Tue 29 Dec 11:00.
    due = deadlines_for(
        "s47", "AMBER", None, london(2026, 12, 24, 9, 0), london(2026, 12, 24, 11, 0), CAL, CONFIG
    )
    assert due["strategy_discussion"] == london(2026, 12, 29, 11, 0)
    # Received Thu 24 Dec 09:00 -> acknowledgement due Tue 29 Dec 09:00 for the same reason.
    assert due["acknowledge_referrer"] == london(2026, 12, 29, 9, 0)


def test_initial_assessment_is_45_working_days_from_receipt() -> None:
    # Received Thu 1 Apr 2027 10:00. Working days: Fri 2 Apr = 1; 5-9 Apr = 2..6;
    # 12-16 = 7..11; 19-23 = 12..16; 26-30 = 17..21; Mon 3 May bank holiday;
    # 4-7 May = 22..25; 10-14 = 26..30; 17-21 = 31..35; 24-28 = 36..40; Mon 31 May bank
    # holiday; 1-4 Jun = 41..44; Mon 7 Jun = 45. The decision time does not move it.
    due = deadlines_for(
        "initial-assessment",
        "amber",
        None,
        london(2027, 4, 1, 10, 0),
        london(2027, 4, 6, 16, 0),
        CAL,
        CONFIG,
    )
    assert due == {
        "acknowledge_referrer": london(2027, 4, 2, 10, 0),
        "assessment": london(2027, 6, 7, 10, 0),
    }


@pytest.mark.parametrize(
    ("agency", "expected"),
    [
        # Decided Thu 24 Dec 2026 10:00. Working days after: Tue 29 = 1, Wed 30 = 2,
        # Thu 31 = 3, Fri 1 Jan New Year's Day skipped, Mon 4 Jan = 4, Tue 5 Jan = 5.
        ("police", london(2026, 12, 29, 10, 0)),  # 1 working day
        ("early_help", london(2026, 12, 31, 10, 0)),  # 3
        ("Early Help", london(2026, 12, 31, 10, 0)),  # same agency type, spelt loosely
        ("health", london(2026, 12, 31, 10, 0)),  # 3
        ("education", london(2026, 12, 31, 10, 0)),  # 3
        ("housing", london(2027, 1, 5, 10, 0)),  # 5
        ("youth-club", london(2026, 12, 31, 10, 0)),  # unknown agency: default 3
        (None, london(2026, 12, 31, 10, 0)),  # default 3
    ],
)
def test_single_agency_acknowledgement_per_agency(agency: str | None, expected: datetime) -> None:
    decided = london(2026, 12, 24, 10, 0)
    due = deadlines_for("single-agency", "green", agency, decided, decided, CAL, CONFIG)
    assert due == {
        "acknowledge_referrer": london(2026, 12, 29, 10, 0),
        "single_agency_acknowledgement": expected,
    }


@pytest.mark.parametrize(
    ("rag", "expected"),
    [
        # Received Fri 27 Nov 2026 15:30.
        ("red", london(2026, 11, 27, 19, 30)),  # 4 clock hours
        ("amber", london(2026, 11, 30, 15, 30)),  # 1 working day: Mon
        ("green", london(2026, 12, 2, 15, 30)),  # 3 working days: Mon, Tue, Wed
        ("blue", None),  # no clock
    ],
)
def test_screening_decision_when_awaiting_practitioners(
    rag: str, expected: datetime | None
) -> None:
    received = london(2026, 11, 27, 15, 30)
    assert screening_decision_deadline(rag, received, CAL, CONFIG) == expected
    due = deadlines_for(
        "single-agency", rag, None, received, received, CAL, CONFIG, awaiting_practitioners=True
    )
    assert due.get("screening_decision") == expected
    # Not awaiting practitioners: no screening clock.
    assert "screening_decision" not in deadlines_for(
        "single-agency", rag, None, received, received, CAL, CONFIG
    )


def test_icpc_is_15_working_days_from_strategy_discussion() -> None:
    # Strategy discussion held Tue 13 Apr 2027 11:00. Working days after: 14-16 Apr = 1..3;
    # 19-23 = 4..8; 26-30 = 9..13; Mon 3 May bank holiday; Tue 4 May = 14; Wed 5 May = 15.
    assert icpc_deadline(london(2027, 4, 13, 11, 0), CAL, CONFIG) == london(2027, 5, 5, 11, 0)


def test_unknown_queue_or_rag_is_refused() -> None:
    moment = london(2026, 11, 27, 10, 0)
    with pytest.raises(ValueError, match="unknown queue 'none'"):
        deadlines_for("none", "blue", None, moment, moment, CAL, CONFIG)
    with pytest.raises(ValueError, match="unknown RAG rating 'purple'"):
        deadlines_for("s47", "purple", None, moment, moment, CAL, CONFIG)


def test_custom_config_changes_the_figures(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG_PATH.read_text().replace(
        "housing: {working_days: 5}", "housing: {working_days: 10}"
    )
    path = tmp_path / "deadlines.yaml"
    path.write_text(text)
    config = load_deadline_config(path)
    decided = london(2026, 11, 23, 10, 0)  # Monday; + 10 working days -> Mon 7 Dec
    due = deadlines_for("single-agency", "green", "housing", decided, decided, CAL, config)
    assert due["single_agency_acknowledgement"] == london(2026, 12, 7, 10, 0)


SHIPPED_TEXT = DEFAULT_CONFIG_PATH.read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SHIPPED_TEXT.replace(
                "s47: [acknowledge_referrer, strategy_discussion]",
                "s47: [acknowledge_referrer, strategy_discusion]",
            ),
            "queue 's47' lists unknown clock 'strategy_discusion'",
        ),
        (
            SHIPPED_TEXT.replace(
                "s47: [acknowledge_referrer, strategy_discussion]",
                "s47: [acknowledge_referrer, icpc]",
            ),
            "lists clock 'icpc', which starts at strategy_discussion_held",
        ),
        (
            SHIPPED_TEXT.replace("red: {hours: 4}", "red: {hours: 4, working_days: 1}", 1),
            "give exactly one of working_days or hours",
        ),
        (
            SHIPPED_TEXT.replace("  s47: [acknowledge_referrer, strategy_discussion]\n", ""),
            "queues ['s47'] have no clock list",
        ),
        (SHIPPED_TEXT.replace("  icpc:", "  icpc_typo:"), "clock 'icpc' is missing"),
        (SHIPPED_TEXT.replace("starts: decision", "starts: tomorrow", 1), "clocks.strategy_"),
        (SHIPPED_TEXT.replace("red: {hours: 4}", "purple: {hours: 4}", 1), "by_rag.purple"),
        (SHIPPED_TEXT.replace("{working_days: 45}", "{working_days: -1}"), "greater than or eq"),
        ("clocks: [unclosed\n", "not valid YAML at line"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_invalid_config_fails_with_one_line_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "deadlines.yaml"
    path.write_text(text)
    with pytest.raises(DeadlineConfigError) as caught:
        load_deadline_config(path)
    error = str(caught.value)
    assert message in error
    assert error.startswith(str(path))  # names the file
    assert "\n" not in error


def test_missing_config_file() -> None:
    with pytest.raises(DeadlineConfigError, match="cannot read deadlines file"):
        load_deadline_config("/nonexistent/deadlines.yaml")


def test_clocks_are_met_by_the_steps_the_table_names() -> None:
    assert clocks_met_by("acknowledged", CONFIG) == {
        "acknowledge_referrer",
        "single_agency_acknowledgement",
    }
    assert clocks_met_by("strategy_discussion_held", CONFIG) == {
        "acknowledge_referrer",
        "strategy_discussion",
    }
    assert clocks_met_by("assessment_completed", CONFIG) == {"acknowledge_referrer", "assessment"}
    assert clocks_met_by("icpc_held", CONFIG) == {"icpc"}
    assert clocks_met_by("closed", CONFIG) == set(CONFIG.clocks)


def test_an_open_case_update_starts_only_the_update_clocks() -> None:
    moment = london(2026, 11, 27, 10, 0)
    due = deadlines_for("s47", "red", None, moment, moment, CAL, CONFIG, open_case_update=True)
    assert due == {"acknowledge_referrer": london(2026, 11, 30, 10, 0)}


def test_office_hours_per_hub_move_the_start_of_a_weekend_clock(tmp_path: Path) -> None:
    text = SHIPPED_TEXT.replace(
        "  by_hub: {}\n", '  by_hub:\n    east-south: {start: "08:00", end: "16:00"}\n'
    )
    path = tmp_path / "deadlines.yaml"
    path.write_text(text)
    config = load_deadline_config(path)
    assert calendar_for("north-west-central", config).office.start == time(9, 0)
    # Received Sat 28 Nov 2026 14:00: counts from Mon 30 Nov at office opening, + 1
    # working day -> Tue 1 Dec at 08:00 for east-south, 09:00 elsewhere.
    saturday = london(2026, 11, 28, 14, 0)
    east = deadlines_for(
        "single-agency",
        "green",
        None,
        saturday,
        saturday,
        calendar_for("east-south", config),
        config,
    )
    north = deadlines_for(
        "single-agency",
        "green",
        None,
        saturday,
        saturday,
        calendar_for("north-west-central", config),
        config,
    )
    assert east["acknowledge_referrer"] == london(2026, 12, 1, 8, 0)
    assert north["acknowledge_referrer"] == london(2026, 12, 1, 9, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SHIPPED_TEXT.replace(
                "open_case_update: [acknowledge_referrer]", "open_case_update: [icpc]"
            ),
            "open_case_update lists clock 'icpc', which starts at strategy_discussion_held",
        ),
        (
            SHIPPED_TEXT.replace("met_by: [strategy_discussion_held]", "met_by: [discussed]"),
            "clocks.strategy_discussion.met_by",
        ),
        (
            SHIPPED_TEXT.replace(
                'default: {start: "09:00", end: "17:00"}', 'default: {start: "17:00", end: "09:00"}'
            ),
            "must be before end",
        ),
    ],
)
def test_invalid_routing_additions_fail_with_one_line_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "deadlines.yaml"
    path.write_text(text)
    with pytest.raises(DeadlineConfigError, match=message):
        load_deadline_config(path)
