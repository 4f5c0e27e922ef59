"""Threshold rule-set files (YAML). A package only so the files ship with the wheel."""
