"""The council's cases — pure, no I/O: what intake records of each case status the
council's case management system publishes (``mash.inbound.case-status.v1``).

Open cases come from two places (docs/domain.md "Identity and history"): the hub's own queue
items, and the council's case system. A **council case** is one (case system, the system's
own child id, case type); intake keeps one row per case holding its latest status:

- the child is identified as on a contact (:func:`~services.intake.linking.identify`, with
  the case system as the sending system) and carries its
  :func:`~services.intake.linking.person_key`, so a contact finds the case by subject id
  or, when the family has moved, by a probable match. The row holds no name, date of birth
  or address: only those two hashes;
- the status with the latest ``at`` wins, whatever order the events arrive in: an older
  status arriving late is **superseded** and changes nothing. On the same ``at`` an open
  status wins over a closed one (the order of two such events is unknowable, and a missed
  open case costs more than a flagged one), so the result never depends on arrival order;
- the status already recorded, at the same time, sent again under another event id is a
  **repeat** (a duplicate by source); the same event id again never gets this far (the
  pipeline's inbox).

A batch is decided in offset order against the recorded statuses, each event seeing the
batch's earlier ones (:func:`decide_case_statuses`); then one row per case is written
(:func:`cases_to_record`): the same rows as applying the events one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.cloudevents import CloudEvent
from schemas.inbound import CaseState, CaseStatus, CaseType
from services.common.ids import derive_id
from services.intake.linking import identify, person_key

Verdict = Literal["recorded", "superseded", "repeat"]
"""What a case status does: becomes the case's status, is older than the recorded one
(no effect), or is the recorded one sent again (a duplicate by source)."""


def council_case_id(case_system: str, child_ref: str, case_type: str) -> str:
    """The stable id of a council case (audit entries name it; no personal data in it)."""
    return derive_id("council-case", case_system, child_ref, case_type)


@dataclass(frozen=True)
class CouncilCase:
    """One case status as intake records it: the case's row if the status is its latest."""

    council_case_id: str
    case_system: str
    child_ref: str
    case_type: CaseType
    subject_id: str
    person_key: str | None
    status: CaseState
    at: datetime
    team: str | None
    hub: str | None
    event_id: str
    recorded_at: datetime

    @property
    def standing(self) -> RecordedStatus:
        """The status and time this event gives the case."""
        return RecordedStatus(self.status, self.at)


@dataclass(frozen=True)
class RecordedStatus:
    """A case's status and the case system's time of it."""

    status: CaseState
    at: datetime

    def rank(self) -> tuple[datetime, bool]:
        """Orders statuses: the later ``at`` wins; on the same ``at``, open wins."""
        return (self.at, self.status == "open")


@dataclass(frozen=True)
class OpenCouncilCase:
    """A case the council holds open for a child, as a contact about the child sees it."""

    subject_id: str
    person_key: str | None
    """What a probable match of the child shares (:func:`~services.intake.linking.person_key`)."""
    case_type: CaseType
    hub: str | None
    """The hub holding the case, when the case system named one."""


def council_case_of(payload: CaseStatus, event: CloudEvent, recorded_at: datetime) -> CouncilCase:
    """The row a validated case status would leave: the child identified (subject id and
    person key, hashes only), the case's status, time, team and hub, and the event."""
    child = payload.child
    birth = child.date_of_birth or child.expected_date_of_birth
    subject_id, _ = identify(
        nhs_number=child.nhs_number,
        given_name=child.given_name,
        family_name=child.family_name,
        birth_date=birth,
        postcode=child.address.postcode if child.address else None,
        source_system=payload.case_system,
        child_ref=child.child_ref,
    )
    return CouncilCase(
        council_case_id=council_case_id(payload.case_system, child.child_ref, payload.case_type),
        case_system=payload.case_system,
        child_ref=child.child_ref,
        case_type=payload.case_type,
        subject_id=subject_id,
        person_key=person_key(child.given_name, child.family_name, birth),
        status=payload.status,
        at=payload.at,
        team=payload.team,
        hub=payload.hub,
        event_id=event.id,
        recorded_at=recorded_at,
    )


def verdict_on(case: CouncilCase, recorded: RecordedStatus | None) -> Verdict:
    """What a case status does to a case whose latest status is ``recorded`` (None: a case
    not seen before)."""
    if recorded is None or case.standing.rank() > recorded.rank():
        return "recorded"
    if case.standing == recorded:
        return "repeat"
    return "superseded"


def decide_case_statuses(
    cases: Sequence[CouncilCase], recorded: Mapping[str, RecordedStatus]
) -> list[Verdict]:
    """The verdict on each case status in turn, each seeing the statuses recorded before
    the batch (``recorded``, by council case id) and those of the batch's earlier events."""
    latest = dict(recorded)
    verdicts: list[Verdict] = []
    for case in cases:
        verdict = verdict_on(case, latest.get(case.council_case_id))
        if verdict == "recorded":
            latest[case.council_case_id] = case.standing
        verdicts.append(verdict)
    return verdicts


def cases_to_record(cases: Sequence[CouncilCase], verdicts: Sequence[Verdict]) -> list[CouncilCase]:
    """One row per case that a batch changes — its last recorded status, which beats all
    the batch's others — sorted by case id, so concurrent writers lock rows in one order."""
    rows: dict[str, CouncilCase] = {}
    for case, verdict in zip(cases, verdicts, strict=True):
        if verdict == "recorded":
            rows[case.council_case_id] = case
    return [rows[cid] for cid in sorted(rows)]
