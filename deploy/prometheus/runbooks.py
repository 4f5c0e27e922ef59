"""Point the alerts' ``runbook_url`` links at where your team reads README.md.

    python3 deploy/prometheus/runbooks.py https://git.example.org/mash/blob/main/README.md out/

The shipped rules (``rules/*.yml``) link every alert to :data:`DEFAULT_BASE` plus the
alert's README anchor (``#mashcommitstalled``...). This writes a copy of each rules file to
the output directory with that base replaced, ready for Prometheus's ``rule_files``; the
shipped files stay as they are. Standard library only, so any python3 runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

#: The base the shipped rules link to (a reserved, never-resolving domain: replace it).
DEFAULT_BASE = "https://mash-router.example/README.md"
RULES = Path(__file__).resolve().parent / "rules"


def render(text: str, base: str) -> str:
    """``text`` (a rules file) with every runbook link moved from the default base to ``base``."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ValueError(f"runbook base must be an absolute http(s) URL without '#': {base!r}")
    return text.replace(f"runbook_url: {DEFAULT_BASE}#", f"runbook_url: {base}#")


def render_all(base: str, out: Path, rules: Path = RULES) -> list[Path]:
    """Write every ``rules/*.yml`` rendered for ``base`` into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(rules.glob("*.yml")):
        target = out / source.name
        target.write_text(render(source.read_text(), base))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", help="absolute URL of README.md (no #anchor)")
    parser.add_argument("out", type=Path, help="directory to write the rendered rules to")
    args = parser.parse_args(argv)
    try:
        for path in render_all(args.base, args.out):
            print(path)
    except ValueError as exc:
        print(f"runbooks.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
