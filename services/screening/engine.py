"""The threshold-rule engine: decide one contact under a loaded rule set.

Pure: no I/O, no clock reads (the decision time is passed in). The rules are
:mod:`services.screening.rules` (the shipped table is ``rulesets/default-v3.yaml``), read by
:mod:`services.screening.ruleset`; the facts they look at are :mod:`services.screening.facts`.
This module fires them for each child, gives each child and the contact a level, and writes
the :class:`~schemas.events.Decision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from schemas.events import Contact, ContactChild, Decision, DecisionSubject, RuleHit
from services.common import encompass
from services.common.calendar import incident_date
from services.common.ids import derive_id
from services.screening.facts import Facts, ScreeningHistory, facts_for
from services.screening.rules import JOINT_SCREENING_AGENCIES, Rule
from services.screening.ruleset import RuleSet

__all__ = ["evaluate", "joint_screening_views", "steps_up"]


def evaluate(
    contact: Contact, history: ScreeningHistory, rule_set: RuleSet, decided_at: datetime
) -> Decision:
    """The automated decision for ``contact``: each child's own level (the highest any rule
    gives that child) and the contact's, the highest of the children's.

    Lists every rule that fired (once each, highest level first, then file order), each
    with its reason rendered for the first child it fired for; each child's subject entry
    lists the rules that fired for that child. Rules about siblings
    (``sibling_level_at_least``) see the levels the other rules gave the other children.
    """
    on = incident_date(contact)
    children = _with_sibling_levels(rule_set, facts_for(contact, history, on, rule_set.windows))
    fired = _fired(rule_set, children)
    level = fired[0][0].level
    spec = rule_set.levels[level]
    target = (
        next((t for rule, matched in fired if (t := rule.target_for(matched))), None)
        if level == 2
        else None
    )
    joint = contact.incident_type == "domestic_abuse"
    return Decision(
        decision_id=derive_id("decision", contact.contact_id, "rules", rule_set.version),
        contact_id=contact.contact_id,
        contact_reference=contact.contact_reference,
        level=level,
        outcome=spec.outcome,
        target_agency=target,
        rag=spec.rag,
        rules=[
            RuleHit(id=rule.id, reason=rule.reason.format_map(matched[0].template_values()))
            for rule, matched in fired
        ],
        rule_set_version=rule_set.version,
        rule_set_hash=rule_set.content_hash,
        joint_screening=joint,
        participating_agencies=list(JOINT_SCREENING_AGENCIES) if joint else [],
        joint_screening_views=joint_screening_views(contact, children) if joint else {},
        # DASH high is a MARAC referral whoever was present; rules may add criteria
        # (R3-DA-REPEAT: the "potential escalation" criterion).
        marac_referral=joint
        and (contact.dash_risk == "high" or any(rule.marac_referral for rule, _ in fired)),
        encompass_required=encompass.required(contact),
        # The police detail of a restricted notification is for the s47 queue only; the
        # decision itself is made as for any other (restriction limits sharing, not care).
        restricted=contact.restricted,
        source="rules",
        decided_at=decided_at,
        hub=contact.hub,
        subjects=[_subject(rule_set, facts, fired) for facts in children],
        open_case=contact.open_case,
        received_at=contact.received_at,
        contact_source=contact.source,
    )


def joint_screening_views(contact: Contact, children: Sequence[Facts]) -> dict[str, list[str]]:
    """What each agency's view brings to a joint screening (docs/domain.md "Domestic-abuse joint
    screening"): the police's (DASH risk, domestic-abuse notifications for the household in
    the window, this one included), children's social care's (an open case, a re-referral,
    the council's open case types) and health's (a child under one, an unborn child). The
    rules decide on these same facts; the views say whose they are."""
    police = [f"dash_{contact.dash_risk}"] if contact.dash_risk else []
    if children:
        police.append(f"da_notifications_{children[0].count('da_notifications')}")
    social_care = ["open_case"] if contact.open_case else []
    social_care += ["re_referral"] if contact.re_referral else []
    cases = sorted({case for f in children for case in f.child.council_cases})
    social_care += [f"council_{case}" for case in cases]
    health = ["unborn"] if any(f.child.expected_date_of_birth for f in children) else []
    if any(f.age == 0 and f.child.date_of_birth is not None for f in children):
        health.append("child_under_1")
    return {"police": police, "childrens_social_care": social_care, "health": health}


def _fired(rule_set: RuleSet, children: Sequence[Facts]) -> list[tuple[Rule, list[Facts]]]:
    """Each rule that holds for at least one child, with those children; highest level
    first, file order within a level; the fallback for everyone when none holds."""
    fired: list[tuple[Rule, list[Facts]]] = []
    for rule in rule_set.rules:
        matched = [f for f in children if rule.condition(f)]
        if matched:
            fired.append((rule, matched))
    if not fired:
        fired = [(rule_set.fallback, list(children))]
    fired.sort(key=lambda hit: -hit[0].level)  # stable: file order within a level
    return fired


def _with_sibling_levels(rule_set: RuleSet, children: list[Facts]) -> list[Facts]:
    """The facts again, each with the highest level the rules give the child's siblings in
    the contact (sibling rules cannot fire on the first pass: every sibling level is 0)."""
    if len(children) < 2:
        return children
    own = {id(f): _level_for(f, _fired(rule_set, children)) for f in children}
    return [
        replace(f, sibling_level=max(own[id(o)] for o in children if o is not f)) for f in children
    ]


def _level_for(child: Facts, fired: Sequence[tuple[Rule, list[Facts]]]) -> int:
    return max((rule.level for rule, matched in fired if _among(child, matched)), default=1)


def _among(child: Facts, matched: Sequence[Facts]) -> bool:
    # By identity: two children may have equal facts and still be two children.
    return any(m is child for m in matched)


def _subject(
    rule_set: RuleSet, child: Facts, fired: Sequence[tuple[Rule, list[Facts]]]
) -> DecisionSubject:
    """One child's own screening: the rules that fired for the child, and its level."""
    mine = [rule for rule, matched in fired if _among(child, matched)] or [rule_set.fallback]
    level = mine[0].level  # ``fired`` is highest first
    spec = rule_set.levels[level]
    values = child.template_values()
    return DecisionSubject(
        subject_id=child.child.subject_id,
        child_ref=child.child.child_ref,
        level=level,
        outcome=spec.outcome,
        rag=spec.rag,
        target_agency=(
            next((t for rule in mine if (t := rule.target_for([child]))), None)
            if level == 2
            else None
        ),
        rules=[RuleHit(id=rule.id, reason=rule.reason.format_map(values)) for rule in mine],
        step_up=steps_up(level, child.child),
    )


def steps_up(level: int, child: ContactChild) -> bool:
    """A child with an open early-help case and a level-3 concern steps up to assessment
    (docs/domain.md "Identity and history"): routing opens an assessment rather than updating the
    early-help case. (At level 4 the open case escalates to s47 anyway.)"""
    return level == 3 and "early_help" in child.council_cases
