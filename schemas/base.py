"""Shared building blocks for the event contract: the base model and validated field types.

Every payload model derives from :class:`ContractModel`, so unknown fields are rejected
(upstream mistakes surface instead of vanishing) and instances are immutable once
validated. The annotated types below carry both the runtime check and, where JSON Schema
can express it, the equivalent constraint in the exported schema.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

__all__ = [
    "ClosureReason",
    "ContractModel",
    "FactorCode",
    "Identifier",
    "IsoDate",
    "LongText",
    "Name",
    "NhsNumber",
    "NonBlankText",
    "Outcome",
    "Phone",
    "Postcode",
    "QueueName",
    "Rag",
    "ReferralSource",
    "SchoolUrn",
    "ShortText",
    "Timestamp",
    "is_valid_nhs_number",
    "nhs_check_digit",
    "normalise_postcode",
    "printable",
    "unsafe_text",
]


#: Characters no contract text may hold: C0/C1 controls other than tab, newline and
#: carriage return, and unpaired UTF-16 surrogates (JSON can smuggle both in as \u
#: escapes; PostgreSQL text refuses NUL, and neither UTF-8 nor JSON output can carry a
#: lone surrogate).
_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def unsafe_text(text: str) -> bool:
    """Whether ``text`` holds a control character or an unpaired surrogate."""
    return _UNSAFE_TEXT.search(text) is not None


def printable(text: str) -> str:
    """``text`` with every unsafe character written as a visible escape (``\\x00``)."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE_TEXT.sub(escape, text)


def _safe_texts(value: Any) -> Any:
    if isinstance(value, str):
        if unsafe_text(value):
            raise ValueError("text holds a control character or an unpaired surrogate")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _safe_texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _safe_texts(key)
            _safe_texts(item)
    return value


class ContractModel(BaseModel):
    """Base class of every contract payload: unknown fields are errors, instances are frozen.

    Attribute docstrings become field descriptions in the exported JSON Schema, which is
    what non-Python producers read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_unsafe_text(cls, value: Any) -> Any:
        # Every text field, of every model: garbage surfaces as a schema violation at the
        # front door instead of failing a database write or a serialisation downstream.
        return _safe_texts(value)


# --- Times and dates -------------------------------------------------------------------
# pydantic on its own also accepts unix timestamps (as numbers or digit strings) and
# date-only strings for datetimes. The contract says RFC 3339 with offset and ISO dates,
# so text input is held to exactly that; datetime/date objects built in Python pass through.

RFC3339_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _parse_rfc3339(value: Any) -> Any:
    # Parse here rather than leave it to pydantic, so the same text rules hold in
    # python, JSON and strict modes alike (strict mode refuses text for datetimes).
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and RFC3339_DATETIME.fullmatch(value):
        # fromisoformat wants upper-case T and Z; it truncates fractions beyond microseconds.
        return datetime.fromisoformat(value.upper())
    raise ValueError("expected an RFC 3339 date-time with offset, e.g. 2024-03-12T21:40:00+00:00")


def _parse_iso_date(value: Any) -> Any:
    # datetime is a subclass of date: refuse it, a date field holds a calendar date only.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        return date.fromisoformat(value)
    raise ValueError("expected an ISO date, e.g. 2019-05-17")


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_parse_rfc3339),
    # "format" is only an annotation for most JSON Schema validators; the pattern makes
    # non-Python producers' validators enforce the offset too.
    Field(json_schema_extra={"pattern": f"^{RFC3339_DATETIME.pattern}$"}),
]
"""An instant: RFC 3339 text with a UTC offset (naive times and unix numbers are refused)."""

IsoDate = Annotated[
    date,
    BeforeValidator(_parse_iso_date),
    Field(json_schema_extra={"pattern": f"^{ISO_DATE.pattern}$"}),
]
"""A calendar date as ISO text ``YYYY-MM-DD``."""


# --- NHS number -----------------------------------------------------------------------


def nhs_check_digit(first_nine: str) -> int | None:
    """Return the modulus-11 check digit for the first nine digits of an NHS number.

    Returns ``None`` when the remainder gives 10: no NHS number is issued with those nine
    digits, so any tenth digit is wrong.
    """
    if len(first_nine) != 9 or not first_nine.isascii() or not first_nine.isdigit():
        raise ValueError("expected exactly nine ASCII digits")
    total = sum(
        int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid_nhs_number(value: str) -> bool:
    """Tell whether ``value`` is ten ASCII digits whose last is the right check digit."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    return nhs_check_digit(value[:9]) == int(value[9])


def _check_nhs_number(value: str) -> str:
    # The pattern constraint has already guaranteed ten ASCII digits by the time this runs.
    if not is_valid_nhs_number(value):
        raise ValueError("invalid NHS number check digit")
    return value


NhsNumber = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{10}$"),
    AfterValidator(_check_nhs_number),
    Field(description="NHS number: ten digits, no spaces, valid modulus-11 check digit."),
]
"""A ten-digit NHS number whose check digit is valid."""


# --- Postcode -------------------------------------------------------------------------

# Lenient input form: any case, optional/extra spaces between outward and inward codes.
# This is also what the JSON Schema advertises, since producers may send "b6 4aa".
_POSTCODE_INPUT = (
    r"^\s*(?:[Gg][Ii][Rr]\s*0[Aa][Aa]|[A-Za-z]{1,2}[0-9][A-Za-z0-9]?\s*[0-9][A-Za-z]{2})\s*$"
)
_POSTCODE_CANONICAL = re.compile(r"(?:GIR 0AA|[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2})", re.ASCII)


def normalise_postcode(value: str) -> str:
    """Return a UK postcode in canonical form: upper case, one space before the inward code.

    ``"b6 4aa"`` and ``"B64AA"`` both become ``"B6 4AA"``. Raises ``ValueError`` when the
    value is not a UK postcode.
    """
    compact = "".join(value.split()).upper()
    candidate = f"{compact[:-3]} {compact[-3:]}"
    if not _POSTCODE_CANONICAL.fullmatch(candidate):
        raise ValueError("invalid UK postcode")
    return candidate


Postcode = Annotated[
    str,
    StringConstraints(max_length=16, pattern=_POSTCODE_INPUT),
    AfterValidator(normalise_postcode),
    Field(description="UK postcode; normalised to upper case with one space, e.g. 'B6 4AA'."),
]
"""A UK postcode, normalised to upper case with a single space (``"b6 4aa"`` -> ``"B6 4AA"``)."""


SchoolUrn = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{6}$"),
    Field(description="School unique reference number (URN): six digits."),
]
"""A six-digit school unique reference number."""


# --- Strings with limits --------------------------------------------------------------
# Limits are deliberately generous: their job is to make garbage (a whole document pasted
# into a name, an empty id) fail loudly at the boundary, not to police real data.

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^\S(?:.*\S)?$"),
]
"""A non-empty id or reference: at most 200 characters, no leading/trailing whitespace."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]
"""A person's name part: 1-100 characters, not only whitespace."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
"""A short label (organisation, role, address line): 1-200 characters, not only whitespace."""

NonBlankText = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")]
"""A required sentence or paragraph (e.g. a reason): 1-2000 characters, not only whitespace."""

LongText = Annotated[str, StringConstraints(max_length=20000)]
"""Free text such as a narrative: may be empty, at most 20000 characters."""

Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 ()-]{4,28}[0-9]$")]
"""A telephone number: digits with optional leading '+', spaces, brackets and hyphens."""


# --- Census and routing code lists (DfE Children in Need census; docs/domain.md) --------

ReferralSource = Literal[
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F",
    "4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10",
]  # fmt: skip
"""Census referral source code (``"6"`` is police)."""

FactorCode = Literal[
    "1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B", "3C", "4A", "4B", "4C",
    "5A", "5B", "5C", "6A", "6B", "6C", "7A", "8B", "8C", "8D", "8E", "8F",
    "9A", "10A", "11A", "12A", "13A", "14A", "15A", "16A", "17A", "18B", "18C",
    "19B", "19C", "20", "21", "22A", "23A", "24A",
]  # fmt: skip
"""Census factor code, used as the vocabulary of concerns (``"21"`` means no factors)."""

Outcome = Literal["no_further_action", "single_agency", "initial_assessment", "s47"]
"""Screening outcome, one per threshold level 1-4."""

Rag = Literal["blue", "green", "amber", "red"]
"""Urgency rating given at screening (blue means no concern)."""

QueueName = Literal["single-agency", "initial-assessment", "s47"]
"""Work queue inside a hub; part of the topic name ``mash.queue.<hub>.<queue>.v1``."""

ClosureReason = Literal["RC1", "RC2", "RC3", "RC4", "RC5", "RC6", "RC7", "RC8", "RC9"]
"""Census case closure reason."""
