"""The progress bar every long-running ``mash`` command shows (rich, on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Messages per second over rich's recent-speed window."""

    def render(self, task: Task) -> Text:
        """The current rate, e.g. ``420 msg/s``."""
        speed = task.finished_speed or task.speed
        return Text("  - msg/s" if speed is None else f"{speed:5.0f} msg/s", style="cyan")


def make_progress(enabled: bool) -> Progress:
    """A progress display on stderr (stdout stays clean for output); off when not enabled."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        # rich would route prints to stdout through the bar's console (stderr) while it
        # shows; stdout may be carrying the command's data (-), so leave it alone.
        redirect_stdout=False,
        disable=not enabled,
    )
