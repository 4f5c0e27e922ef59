"""Tables the README keeps between two HTML comment markers and a command regenerates
from the data they describe (principals, database roles, topic configs), so a test can
tell when one is stale."""

from __future__ import annotations


def framed(start: str, end: str, table: str) -> str:
    """``table`` (ending in a line break) between its start and end markers."""
    return f"{start}\n{table}{end}"


def replace_table(
    readme: str, start: str, end: str, table: str, error: type[Exception] = ValueError
) -> str:
    """``readme`` with the text between the markers (markers kept) replaced by ``table``;
    ``error`` (one line) when the README lacks the pair."""
    begin, finish = readme.find(start), readme.find(end)
    if begin < 0 or finish < begin:
        raise error(f"the README has no {start} ... {end} block")
    return readme[:begin] + framed(start, end, table) + readme[finish + len(end) :]
