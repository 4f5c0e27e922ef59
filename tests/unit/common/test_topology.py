"""Hub topology: shipped files load, every district resolves, bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.topology import (
    HubResolution,
    Topology,
    TopologyError,
    load_topology,
    postcode_district,
)

SHIPPED = ("two-hubs", "central", "four-areas")

# docs/domain.md, Hubs: the default district -> area table, typed out here independently of the
# YAML files so a slip in a shipped file shows up as a failing row.
DOMAIN_TABLE_TEXT = """
north        B6 B20 B21 B23 B24 B35 B42 B44 B72 B73 B74 B75 B76
west-central B1 B2 B3 B4 B5 B7 B15 B16 B17 B18 B19 B32
east         B8 B9 B10 B25 B26 B27 B33 B34 B36
south        B11 B12 B13 B14 B28 B29 B30 B31 B38 B45
"""
DOMAIN_TABLE: dict[str, list[str]] = {
    line.split()[0]: line.split()[1:] for line in DOMAIN_TABLE_TEXT.strip().splitlines()
}

# Which hub serves each area, per topology (docs/domain.md and the brief).
HUB_OF_AREA: dict[str, dict[str, str]] = {
    "two-hubs": {
        "north": "north-west-central",
        "west-central": "north-west-central",
        "east": "east-south",
        "south": "east-south",
    },
    "central": {area: "central" for area in DOMAIN_TABLE},
    "four-areas": {area: area for area in DOMAIN_TABLE},
}

DEFAULT_HUB = {"two-hubs": "north-west-central", "central": "central", "four-areas": "west-central"}

CASES = [
    (topology, district, area, HUB_OF_AREA[topology][area])
    for topology in SHIPPED
    for area, districts in DOMAIN_TABLE.items()
    for district in districts
]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_topology_loads(name: str) -> None:
    topology = load_topology(name)
    assert topology.name == name
    assert topology.default_hub == DEFAULT_HUB[name]
    assert set(topology.hub_ids) == set(HUB_OF_AREA[name].values())
    for hub_id in topology.hub_ids:
        hub = topology.hub(hub_id)
        assert hub.contact_point.endswith("@example.invalid")  # synthetic, never real


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_district_table_is_exactly_the_domain_table(name: str) -> None:
    topology = load_topology(name)
    assert {area: sorted(ds) for area, ds in topology.areas.items()} == {
        area: sorted(ds) for area, ds in DOMAIN_TABLE.items()
    }


@pytest.mark.parametrize(("name", "district", "area", "hub"), CASES)
def test_every_domain_district_resolves_to_its_hub(
    name: str, district: str, area: str, hub: str
) -> None:
    resolution = load_topology(name).resolve(f"{district} 1AA")
    assert resolution == HubResolution(
        hub=hub, area=area, district=district, out_of_area=False, unresolved=False
    )


def test_two_hubs_is_the_default_in_settings() -> None:
    # Settings.topology defaults to "two-hubs"; the name must load as a shipped file.
    assert load_topology("two-hubs").hub_ids == ("north-west-central", "east-south")


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize(("postcode", "district"), [("B90 4AA", "B90"), ("B43 5AA", "B43")])
def test_out_of_area_goes_to_default_hub_flagged(name: str, postcode: str, district: str) -> None:
    # B90 Solihull and B43 Sandwell: well-formed, not in the table.
    resolution = load_topology(name).resolve(postcode)
    assert resolution == HubResolution(
        hub=DEFAULT_HUB[name], area=None, district=district, out_of_area=True, unresolved=False
    )


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize(
    ("postcode", "no_fixed_abode"),
    [(None, False), ("", False), ("   ", False), ("not a postcode", False), ("B15 2TT", True)],
)
def test_unresolvable_goes_to_default_hub_unresolved(
    name: str, postcode: str | None, no_fixed_abode: bool
) -> None:
    resolution = load_topology(name).resolve(postcode, no_fixed_abode=no_fixed_abode)
    assert resolution == HubResolution(
        hub=DEFAULT_HUB[name], area=None, district=None, out_of_area=False, unresolved=True
    )


def test_resolve_never_raises_for_non_string_input() -> None:
    resolution = load_topology("two-hubs").resolve(12345)  # type: ignore[arg-type]
    assert resolution.unresolved
    assert resolution.hub == "north-west-central"


@pytest.mark.parametrize(
    ("postcode", "district"),
    [
        ("b6 4aa", "B6"),
        ("B15 2TT", "B15"),
        ("B151AA", "B15"),  # no space: the inward code is always 3 characters
        ("B11AA", "B1"),
        ("  b15   2tt ", "B15"),
        ("B6", "B6"),  # district only
        ("SW1A 1AA", "SW1A"),
        ("", None),
        ("garbage", None),
        ("B1 51AA", None),  # space in the wrong place
        ("12345", None),
        ("B15 2TTX", None),
    ],
)
def test_postcode_district(postcode: str, district: str | None) -> None:
    assert postcode_district(postcode) == district


def test_lower_case_and_no_space_postcodes_resolve() -> None:
    topology = load_topology("four-areas")
    assert topology.resolve("b6 4aa").hub == "north"
    assert topology.resolve("b304aa").hub == "south"
    assert topology.resolve("B151AA").area == "west-central"


def test_hub_lookup_unknown_id() -> None:
    with pytest.raises(KeyError, match="no hub 'nowhere'"):
        load_topology("two-hubs").hub("nowhere")


def test_topology_can_be_loaded_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(VALID)
    topology = load_topology(str(path))
    assert topology.name == "test"
    assert topology.resolve("B1 1AA").hub == "a"
    assert topology.resolve("b2 1aa").hub == "b"  # lower-case district in the file too


VALID = """\
name: test
default_hub: a
hubs:
  - {id: a, name: Hub A, contact_point: a@example.invalid, areas: [one]}
  - {id: b, name: Hub B, contact_point: b@example.invalid, areas: [two]}
areas:
  one: [B1]
  two: [b2]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            VALID.replace("two: [b2]", "two: [b2, B1]"),
            "district B1 is in two areas: 'one' and 'two'",
        ),
        (VALID.replace("areas: [two]", "areas: [three]"), "hub 'b' serves unknown area 'three'"),
        (VALID.replace("default_hub: a\n", ""), "default_hub: Field required"),
        (VALID.replace("default_hub: a", "default_hub: z"), "default_hub 'z' is not one of"),
        (VALID.replace("areas: [two]", "areas: [one]"), "area 'one' is served by two hubs"),
        (VALID.replace("two: [b2]", "two: [B72-B76]"), "write ranges out one district"),
        (VALID.replace("two: [b2]", "two: [B2]\n  three: [B3]"), "['three'] are served by no hub"),
        (VALID.replace("id: b,", "id: a,"), "hub 'a' is listed twice"),
        (VALID + "extra: 1\n", "extra: Extra inputs are not permitted"),
        ("name: [unclosed\n", "not valid YAML at line"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_invalid_topology_fails_with_one_line_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as caught:
        load_topology(str(path))
    text_of_error = str(caught.value)
    assert message in text_of_error
    assert text_of_error.startswith(str(path))  # names the file
    assert "\n" not in text_of_error


def test_missing_files() -> None:
    with pytest.raises(
        TopologyError, match=r"no shipped topology 'nine-hubs' \(shipped: .*two-hubs"
    ):
        load_topology("nine-hubs")
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load_topology("/nonexistent/topology.yaml")


def test_topology_model_validates_when_built_directly() -> None:
    with pytest.raises(ValueError, match="default_hub 'x'"):
        Topology.model_validate(
            {
                "name": "t",
                "default_hub": "x",
                "hubs": [{"id": "a", "name": "A", "contact_point": "c", "areas": ["one"]}],
                "areas": {"one": ["B1"]},
            }
        )
