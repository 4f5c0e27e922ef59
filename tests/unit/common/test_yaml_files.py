"""The one YAML-config loader: shipped name or path (or text) -> pydantic model -> one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.yaml_files import YamlDocument, load_yaml_model, read_yaml, validate_yaml


class ShelfError(ValueError):
    """The caller's own error type: the loader raises exactly this."""


class Shelf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    size: int = Field(ge=1)
    colour: str = "grey"

    @field_validator("colour")
    @classmethod
    def _known(cls, value: str) -> str:
        if value == "plaid":
            raise ValueError("no plaid shelves\n(the hub's rule)")
        return value


class Defaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    retries: int = 3
    label: str = Field(default="x", alias="name")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    folder = tmp_path / "shipped"
    folder.mkdir()
    write(folder / "small.yaml", "name: small\nsize: 1\n")
    write(folder / "large.yaml", "name: large\nsize: 9\n")
    return folder


def refusal(
    source: str | Path,
    *,
    what: str = "YAML",
    shipped_in: Path | None = None,
    text: str | None = None,
) -> str:
    """The loader's message for a file it refuses, checked to be the caller's type, one line."""
    with pytest.raises(ShelfError) as caught:
        load_yaml_model(source, Shelf, ShelfError, what=what, shipped_in=shipped_in, text=text)
    message = str(caught.value)
    assert type(caught.value) is ShelfError
    assert "\n" not in message
    return message


def test_a_path_is_read_into_the_model(tmp_path: Path) -> None:
    path = write(tmp_path / "shelf.yaml", "name: top\nsize: 2\n")
    assert load_yaml_model(path, Shelf, ShelfError) == Shelf(name="top", size=2)
    assert load_yaml_model(str(path), Shelf, ShelfError, what="shelf").size == 2


def test_a_bare_name_is_the_shipped_file_and_anything_like_a_file_is_a_path(
    shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_yaml_model("large", Shelf, ShelfError, shipped_in=shipped).size == 9
    document = read_yaml("small", ShelfError, shipped_in=shipped)
    assert document.shipped
    assert document.path == shipped / "small.yaml"
    # A suffix, a separator or a Path object means a path, here relative to the cwd.
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "small.yaml", "name: local\nsize: 5\n")
    write(tmp_path / "small", "name: plain\nsize: 5\n")
    for local, name in (
        ("small.yaml", "local"),
        ("./small.yaml", "local"),
        (Path("small"), "plain"),
    ):
        assert load_yaml_model(local, Shelf, ShelfError, shipped_in=shipped).name == name
        assert not read_yaml(local, ShelfError, shipped_in=shipped).shipped


def test_an_unknown_shipped_name_lists_the_shipped_files(shipped: Path) -> None:
    message = refusal("medium", what="shelf", shipped_in=shipped)
    assert message == (
        f"{shipped / 'medium.yaml'}: no shipped shelf 'medium' (shipped: large, small)"
    )


def test_a_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    assert refusal(missing, what="shelf") == (
        f"{missing}: cannot read shelf file (No such file or directory)"
    )
    assert "cannot read YAML file" in refusal(missing)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "shelf.yaml", "name: top\nsize: [2\n")
    message = refusal(path)
    assert message.startswith(f"{path}: not valid YAML at line ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "expected a mapping with name, size"),
        ("", "expected a mapping with name, size"),
        ("name: top\n", "size: Field required"),
        ("name: top\nsize: 0\n", "size: Input should be greater than or equal to 1"),
        ("name: ''\nsize: 0\n", "name: String should have at least 1 character"),
        ("name: ''\nsize: 0\n", "(and 1 more problem(s))"),
        ("name: top\nsize: 1\nshelf: 2\n", "shelf: Extra inputs are not permitted"),
        ("name: top\nsize: 1\ncolour: plaid\n", "colour: no plaid shelves (the hub's rule)"),
    ],
)
def test_an_invalid_file_is_refused_with_its_first_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "shelf.yaml", text)
    refused = refusal(path)
    assert refused.startswith(f"{path}: ")
    assert message in refused
    assert "Value error" not in refused


def test_an_empty_file_means_every_default_when_there_is_one(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.yaml", "# nothing set\n")
    assert load_yaml_model(path, Defaults, ShelfError) == Defaults()
    with pytest.raises(ShelfError, match="expected a mapping with retries, name"):
        load_yaml_model(write(tmp_path / "list.yaml", "[1]\n"), Defaults, ShelfError)


def test_text_is_parsed_under_the_name_given(tmp_path: Path) -> None:
    assert load_yaml_model("<stdin>", Shelf, ShelfError, text="name: a\nsize: 1\n").size == 1
    assert load_yaml_model("-", Shelf, ShelfError, text=b"name: a\nsize: 3\n").size == 3
    assert refusal("hooks.yaml", text="size: 1\n") == ("hooks.yaml: name: Field required")
    # The name is only a name: no file of that name is read, shipped or not.
    assert not (tmp_path / "hooks.yaml").exists()


def test_a_document_keeps_the_exact_bytes_for_a_loader_that_builds_by_hand(
    tmp_path: Path,
) -> None:
    data = "name: café\nsize: 2\n".encode()
    path = tmp_path / "shelf.yaml"
    path.write_bytes(data)
    document = read_yaml(path, ShelfError)
    assert document == YamlDocument(path, data, {"name": "café", "size": 2}, shipped=False)
    assert validate_yaml(document, Shelf, ShelfError) == Shelf(name="café", size=2)
