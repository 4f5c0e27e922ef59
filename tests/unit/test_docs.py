"""The project's documents live in the repository: nothing points outside it, no link is dead.

The design, domain rules, event contract and Kafka/Faust notes are ``docs/*.md``. No text
file of the repository may cite the old out-of-tree copies (a path through the parent
directory's ``shared`` folder), and every relative link of README.md and ``docs/*.md``
must name a file or folder that exists inside the repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("design.md", "domain.md", "contract.md", "publishing.md", "kafka-faust-notes.md")

#: Spelled in two parts so that this file does not match itself.
OUT_OF_TREE = "../" + "shared/"

#: Folders never searched when git cannot list the files.
_SKIP_DIRS = {
    ".git",
    ".venv",
    ".run",
    "build",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}

#: A Markdown inline link or image: ``[text](target)`` or ``[text](target "title")``.
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _repo_files() -> list[Path]:
    """Tracked files plus new ones git does not ignore; a walk when git is unavailable."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file() and not _SKIP_DIRS.intersection(path.relative_to(ROOT).parts)
    ]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *(ROOT / "docs" / name for name in DOCS)]


def _relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of each link that is not a URL, a mail address or an anchor."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
                continue
            found.append((number, target))
    return found


def test_the_documents_are_in_the_repository() -> None:
    for name in DOCS:
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
    assert (ROOT / "LICENSE").is_file()


def test_no_file_points_at_the_out_of_tree_documents() -> None:
    offenders = []
    for path in _repo_files():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if OUT_OF_TREE in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, f"cite the documents under docs/ instead of {OUT_OF_TREE}:\n" + "\n".join(
        offenders
    )


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_markdown_links_resolve(path: Path) -> None:
    dead = []
    for number, target in _relative_links(path):
        file_part = target.split("#", 1)[0]
        if not file_part:
            continue
        resolved = (path.parent / file_part).resolve()
        inside = resolved == ROOT or ROOT in resolved.parents
        if not inside or not resolved.exists():
            dead.append(f"{path.relative_to(ROOT)}:{number}: {target}")
    assert not dead, "links to files that do not exist in the repository:\n" + "\n".join(dead)


def test_the_link_checker_sees_links() -> None:
    """The checker finds README's links to the documents (guards against a broken regex)."""
    targets = {target for _, target in _relative_links(ROOT / "README.md")}
    assert {f"docs/{name}" for name in DOCS} <= targets
    assert _LINK.findall('[a](../x.md "title") [b](<docs/y.md>)') == ["../x.md", "docs/y.md"]
