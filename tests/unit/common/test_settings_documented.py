"""Every setting a service reads is documented in the README's configuration table."""

from __future__ import annotations

from pathlib import Path

from services.common.settings import Settings

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if alias is None:
        return f"MASH_{field.upper()}"
    return str(alias.choices[0])  # type: ignore[union-attr]


def test_every_setting_has_a_row_in_the_readme() -> None:
    missing = [env_name(f) for f in Settings.model_fields if f"| `{env_name(f)}` |" not in README]
    assert missing == [], f"add these to README.md's configuration table: {missing}"


def test_every_setting_says_what_it_is_for() -> None:
    assert all(f.description for f in Settings.model_fields.values())
