"""Practitioner decisions on a screened contact: confirm, override, and the optional s47
confirmation gate. Pure: the state comes in (read from PostgreSQL by the service), the
result goes out; no I/O, no clock reads.

The rules (docs/domain.md "Domestic-abuse joint screening", docs/contract.md practitioner decision):

* **Confirm** records that a practitioner agrees with the effective decision. With the
  s47 gate on, an automated s47 decision waits ("awaiting confirmation") until police
  *and* children's social care have confirmed it; the confirmation that completes the set
  releases it, unchanged (same id, same ``decided_at``: the statutory clocks run from the
  automated decision, never from a slow confirmation). The hold itself is announced at
  once (:func:`held_decision`, its own event id): routing puts it on the hub's s47 queue
  awaiting practitioners, with the screening decision clock, so it is never invisible work.
* **Override** makes a new effective decision (``source='practitioner'``): level and RAG
  follow the outcome, its one rule hit is ``PRACTITIONER-OVERRIDE`` with a reason built only
  from codes (the practitioner's agency and the two outcomes) — the practitioner's own
  words may carry personal detail, so they stay in the system of record and never travel
  on a topic. Everything else (hub, children, joint-screening flags, rule-set version) is
  copied from the automated decision so routing sees the same context. The decision it
  replaces is named in ``supersedes_decision_id``; an override of a decision still awaiting
  confirmation supersedes nothing that was ever effective, so that field is empty and the
  override is the contact's first effective decision (routing queues it afresh).
* Invalid: an override to the outcome (and target agency) the contact already has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from schemas.events import Decision, RuleHit
from schemas.inbound import PractitionerDecision
from services.common.ids import derive_id
from services.screening.rules import LEVEL_OUTCOMES, LevelSpec

__all__ = [
    "OVERRIDE_RULE_ID",
    "REQUIRED_CONFIRMATIONS",
    "ContactDecisions",
    "InvalidTransition",
    "PractitionerResult",
    "apply_practitioner_decision",
    "awaits_confirmation",
    "held_decision",
    "held_event_id",
    "override_decision",
]

#: Agencies whose confirmations release an s47 decision held by the gate (docs/domain.md).
REQUIRED_CONFIRMATIONS: frozenset[str] = frozenset({"police", "childrens_social_care"})
OVERRIDE_RULE_ID = "PRACTITIONER-OVERRIDE"
_LEVEL_OF: Mapping[str, int] = {outcome: level for level, outcome in LEVEL_OUTCOMES.items()}
_AGENCY_WORDS: Mapping[str, str] = {
    "police": "police",
    "childrens_social_care": "children's social care",
    "health": "health",
    "education": "education",
    "early_help": "early help",
    "housing": "housing",
    "other": "another agency",
}
_OUTCOME_WORDS: Mapping[str, str] = {
    "no_further_action": "no further action",
    "single_agency": "single agency",
    "initial_assessment": "initial assessment",
    "s47": "s47 strategy discussion",
}


class InvalidTransition(ValueError):
    """The practitioner decision asks for a change the contact's state forbids."""


def awaits_confirmation(decision: Decision, gate_on: bool) -> bool:
    """Whether an automated decision is held until police and CSC confirm it."""
    return gate_on and decision.source == "rules" and decision.outcome == "s47"


def held_decision(decision: Decision) -> Decision:
    """The event announcing that ``decision`` is held by the gate: the same decision marked
    ``awaiting_practitioners``. Its release is the decision itself, unmarked."""
    return decision.model_copy(update={"awaiting_practitioners": True})


def held_event_id(decision_id: str) -> str:
    """The id of the event announcing the hold (the release keeps the decision's own id)."""
    return derive_id("decision-held", decision_id)


@dataclass(frozen=True)
class ContactDecisions:
    """Screening's state of one contact, as recorded in PostgreSQL."""

    subject_key: str
    """Key of the contact's events (decisions are keyed by it too)."""
    automated: Decision
    """The rule engine's recommendation (always kept)."""
    effective: Decision | None
    """The decision in force, as emitted; None while the automated one awaits confirmation."""
    confirmed_by: frozenset[str] = frozenset()
    """Agencies that have confirmed the automated decision."""

    @property
    def awaiting_confirmation(self) -> bool:
        """The automated decision is held by the s47 gate."""
        return self.effective is None

    @property
    def current(self) -> Decision:
        """What a practitioner is looking at: the effective decision, else the held one."""
        return self.effective or self.automated


@dataclass(frozen=True)
class PractitionerResult:
    """What a practitioner decision did."""

    kind: Literal["confirmed", "released", "overridden"]
    """confirmed: recorded, nothing changes; released: the held s47 decision takes
    effect; overridden: a new effective decision."""
    decision_id: str
    """The decision confirmed or released, or the override created."""
    emit: Decision | None
    """The decision to publish (released or override), if any."""
    superseded_decision_id: str | None = None
    """The decision the override takes the place of (effective or held), if any."""


def override_decision(
    context: Decision,
    previous_outcome: str,
    supersedes: str | None,
    decision: PractitionerDecision,
    event_id: str,
    levels: Mapping[int, LevelSpec],
) -> Decision:
    """The practitioner's decision replacing one with ``previous_outcome``; hub, children,
    flags and rule-set version are copied from ``context`` (the automated decision)."""
    if decision.outcome is None:
        raise InvalidTransition("an override needs an outcome")
    level = _LEVEL_OF[decision.outcome]
    reason = (
        f"Practitioner override by {_AGENCY_WORDS.get(decision.agency, 'another agency')}: "
        f"{_OUTCOME_WORDS[previous_outcome]} changed to {_OUTCOME_WORDS[decision.outcome]}."
    )
    return Decision.model_validate(
        {
            **context.model_dump(),
            "decision_id": derive_id("decision", context.contact_id, "practitioner", event_id),
            "level": level,
            "outcome": decision.outcome,
            "target_agency": decision.target_agency
            if decision.outcome == "single_agency"
            else None,
            "rag": levels[level].rag,
            "rules": [RuleHit(id=OVERRIDE_RULE_ID, reason=reason).model_dump()],
            # The children, without the rules' per-child levels: the override is for all.
            "subjects": [
                {"subject_id": s.subject_id, "child_ref": s.child_ref} for s in context.subjects
            ],
            "source": "practitioner",
            "decided_at": decision.decided_at,
            "supersedes_decision_id": supersedes,
        }
    )


def apply_practitioner_decision(
    state: ContactDecisions,
    decision: PractitionerDecision,
    event_id: str,
    levels: Mapping[int, LevelSpec],
    required: Iterable[str] = REQUIRED_CONFIRMATIONS,
) -> PractitionerResult:
    """Apply one practitioner decision to ``state``; raises InvalidTransition when refused."""
    current = state.current
    if decision.kind == "confirm":
        if state.awaiting_confirmation and frozenset(required) <= (
            state.confirmed_by | {decision.agency}
        ):
            return PractitionerResult("released", current.decision_id, emit=state.automated)
        return PractitionerResult("confirmed", current.decision_id, emit=None)
    target = decision.target_agency if decision.outcome == "single_agency" else None
    if decision.outcome == current.outcome and target == current.target_agency:
        raise InvalidTransition(
            f"override to {decision.outcome} leaves decision {current.decision_id} unchanged"
        )
    supersedes = None if state.effective is None else state.effective.decision_id
    new = override_decision(
        state.automated, current.outcome, supersedes, decision, event_id, levels
    )
    return PractitionerResult(
        "overridden", new.decision_id, emit=new, superseded_decision_id=current.decision_id
    )
