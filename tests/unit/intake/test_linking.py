"""Subject linking rules: who matches whom, and the near-misses that must not match."""

from __future__ import annotations

from datetime import date

import pytest

from services.intake.linking import household_key, normalise_name, person_key, subject_id

BORN = date(2019, 5, 17)


def sid(**overrides: object) -> str:
    base: dict[str, object] = {
        "nhs_number": None,
        "given_name": "Test-Child",
        "family_name": "Example-One",
        "birth_date": BORN,
        "postcode": "B6 4AA",
        "source_system": "urn:police:west-midlands:niche",
        "child_ref": "C-1",
    }
    base.update(overrides)
    return subject_id(**base)  # type: ignore[arg-type]


def test_the_nhs_number_alone_identifies_a_child_across_systems() -> None:
    a = sid(nhs_number="9990000018", family_name="Example-One", postcode="B6 4AA")
    b = sid(
        nhs_number="9990000018",
        family_name="Other",
        postcode="B11 1AA",
        source_system="urn:council:portal",
        child_ref="X-9",
    )
    assert a == b


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"family_name": "O'Neil-Smith"}, {"family_name": "oneil smith"}),
        ({"family_name": "EXAMPLE-ONE"}, {"family_name": "example one"}),
        ({"postcode": "b6 4aa"}, {"postcode": "B64AA"}),
        (
            {"source_system": "urn:a", "child_ref": "1"},
            {"source_system": "urn:b", "child_ref": "2"},
        ),
    ],
)
def test_demographic_match_ignores_case_spacing_and_punctuation(
    left: dict[str, object], right: dict[str, object]
) -> None:
    assert sid(**left) == sid(**right)


@pytest.mark.parametrize(
    "near_miss",
    [
        {"family_name": "Example-Onr"},  # one letter different
        {"given_name": "Test-Twin"},  # a twin: same family, birth date and address
        {"family_name": "Smyth"},
        {"birth_date": date(2019, 5, 18)},  # a day apart
        {"birth_date": date(2018, 5, 17)},
        {"postcode": "B6 4AB"},  # next door is another household, not the same child
        {"nhs_number": "9990000026"},  # an NHS number never matches a demographic id
    ],
)
def test_near_misses_do_not_match(near_miss: dict[str, object]) -> None:
    assert sid(**near_miss) != sid()


def test_without_a_postcode_there_is_no_demographic_match() -> None:
    a = sid(postcode=None, child_ref="C-1")
    b = sid(postcode=None, child_ref="C-1", source_system="urn:other")
    assert a != b, "no fixed abode: only the sending system's own child_ref links contacts"
    assert a == sid(postcode=None, child_ref="C-1")


def test_normalise_name_keeps_every_letter() -> None:
    assert normalise_name(" O'Neil-Smith ") == "oneilsmith"
    assert normalise_name(None) == ""


def test_household_key_is_shared_by_the_same_address_only() -> None:
    assert household_key("b6 4aa", "1 Example Street") == household_key("B64AA", "1 example street")
    assert household_key("B6 4AA", "1 Example Street") != household_key(
        "B6 4AA", "3 Example Street"
    )
    assert household_key(None, "1 Example Street") is None


def test_a_person_key_ignores_the_address_so_a_family_that_moved_shares_it() -> None:
    here = person_key("Test-Child", "Example-One", BORN)
    assert here == person_key("test child", "EXAMPLE ONE", BORN)
    assert sid(postcode="B6 4AA") != sid(postcode="B11 1AA")
    assert here is not None
    assert person_key("Test-Twin", "Example-One", BORN) != here
    assert person_key("Test-Child", "Example-One", date(2019, 5, 18)) != here


def test_no_person_key_without_a_family_name_or_a_date() -> None:
    assert person_key("Test-Child", None, BORN) is None
    assert person_key("Test-Child", "Example-One", None) is None
