"""How far a replay got, kept in a file so that ``--resume`` neither skips nor repeats.

The checkpoint holds the last position done per source partition (or the last line of a
file source) and, for a file target, its length at that moment: a resumed copy cuts the
file back to it. It is saved atomically, so a crash mid-write keeps the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mash.errors import ToolError


@dataclass
class Checkpoint:
    """How far a replay got: last position done per source partition (or ``line``)."""

    source: str
    target: str
    positions: dict[str, int] = field(default_factory=dict)
    target_bytes: int | None = None
    """Length of a target file when the positions were saved (a resume truncates to it)."""
    scanned: int = 0
    copied: int = 0
    complete: bool = False

    def next_position(self, key: str) -> int | None:
        """The first position not yet done for ``key``, or None when nothing was done."""
        last = self.positions.get(key)
        return None if last is None else last + 1

    def save(self, path: Path) -> None:
        """Write atomically (a crash mid-write leaves the previous checkpoint intact)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read a checkpoint; ToolError if it is missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise ToolError(f"no checkpoint at {path}: run without --resume first") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ToolError(f"checkpoint {path} is unreadable ({exc})") from None


def default_checkpoint_path(source: str, target: str) -> Path:
    """Where a replay keeps its checkpoint unless told: one file per source and target."""
    digest = hashlib.sha1(f"{source}\n{target}".encode(), usedforsecurity=False).hexdigest()
    return Path(f".mash-replay-{digest[:12]}.checkpoint.json")
