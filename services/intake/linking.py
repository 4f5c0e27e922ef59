"""Subject linking: who is this child, which household — pure functions, no I/O.

Matching rules (a hub can read them here):
1. A child with an NHS number is identified by it alone: ``subject_id = id("nhs", number)``.
2. Otherwise by normalised given name + family name + date of birth (or expected date of
   birth for an unborn child) + normalised postcode. Normalising removes case, spaces,
   hyphens and apostrophes ("O'Neil-Smith" == "oneil smith") but keeps every letter, so
   near-misses ("Smith" vs "Smyth", a twin's other given name, a different birth date, a
   different postcode) do not match.
3. Without a postcode (no fixed abode) there is no demographic match: the child gets a
   subject id of its own from the sender's system and ``child_ref``.
4. A **probable match** (docs/domain.md "Identity and history") is another subject with the same
   :func:`person_key` — normalised given and family name and date of birth, no postcode —
   in the same hub: a family that moved. It links the child's history and is flagged
   (``match_basis: probable``) for a practitioner to confirm; it never merges subject ids.
The household key is the normalised postcode + first address line; no address, no key.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from services.common.ids import derive_id

MatchBasis = Literal["nhs_number", "demographic", "sender"]
"""How a child's own subject id was found (``probable`` is a link, never an id's basis)."""

_NOT_LETTER_OR_DIGIT = re.compile(r"[^0-9a-z]")


def normalise_name(name: str | None) -> str:
    """Lower-case letters and digits only: ``"O'Neil-Smith "`` -> ``"oneilsmith"``."""
    return _NOT_LETTER_OR_DIGIT.sub("", (name or "").casefold())


def normalise_postcode(postcode: str | None) -> str:
    """Upper-case without spaces: ``"b6 4aa"`` -> ``"B64AA"``."""
    return re.sub(r"\s+", "", (postcode or "")).upper()


def person_key(
    given_name: str | None, family_name: str | None, birth_date: date | None
) -> str | None:
    """The key probable matches share: normalised given and family name and date of birth
    (a hash: no name is stored in it); None without a family name or date."""
    given, family = normalise_name(given_name), normalise_name(family_name)
    if not family or birth_date is None:
        return None
    return derive_id("person", given, family, birth_date.isoformat())


def identify(
    *,
    nhs_number: str | None,
    given_name: str | None,
    family_name: str | None,
    birth_date: date | None,
    postcode: str | None,
    source_system: str,
    child_ref: str,
) -> tuple[str, MatchBasis]:
    """The stable subject id of a child under the matching rules above, and its basis."""
    if nhs_number:
        return derive_id("subject", "nhs", nhs_number), "nhs_number"
    person, code = person_key(given_name, family_name, birth_date), normalise_postcode(postcode)
    if person is not None and code:
        return derive_id("subject", "demographic", person, code), "demographic"
    return derive_id("subject", "sender", source_system, child_ref), "sender"


def subject_id(
    *,
    nhs_number: str | None,
    given_name: str | None,
    family_name: str | None,
    birth_date: date | None,
    postcode: str | None,
    source_system: str,
    child_ref: str,
) -> str:
    """The stable subject id of a child (see :func:`identify`)."""
    return identify(
        nhs_number=nhs_number,
        given_name=given_name,
        family_name=family_name,
        birth_date=birth_date,
        postcode=postcode,
        source_system=source_system,
        child_ref=child_ref,
    )[0]


def household_key(postcode: str | None, line1: str | None) -> str | None:
    """A key shared by everyone at one address, or None without one."""
    code = normalise_postcode(postcode)
    if not code:
        return None
    return derive_id("household", code, normalise_name(line1))
