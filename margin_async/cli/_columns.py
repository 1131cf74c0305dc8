"""The ``rich`` parts of the progress display (imported only when one is shown).

One line per stream::

    borrow history  ━━━━━━━━━━━━━━╸━━━━━━━━━   1,899/5,001 records  waiting 12 s for the rate limit
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

__all__ = ["progress_display"]


class _Records(ProgressColumn):
    """``1,899/5,001 records`` (``1,899 records`` while the total is unknown)."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        if task.total is not None:
            done += f"/{int(task.total):,}"
        return Text(f"{done} records", style="progress.download")


class _Status(ProgressColumn):
    """What the stream waits for and how long, or its pace; the elapsed time when done."""

    def render(self, task: Task) -> Text:
        if task.finished:
            elapsed = task.finished_time if task.finished_time is not None else task.elapsed
            return Text(f"done in {elapsed or 0.0:.1f} s", style="progress.elapsed")
        now = task.fields.get("status")  # the stream's Stream.status
        if not callable(now):
            return Text("")
        status = str(now())
        return Text(
            status, style="yellow" if status.startswith("waiting") else "progress.data.speed"
        )


def progress_display() -> Progress:
    """A display on stderr; ``sys.stderr`` is redirected above it while it runs (log
    records), while records for the terminal go through :mod:`margin_async.cli._sink`."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        _Records(),
        _Status(),
        console=Console(stderr=True),
        refresh_per_second=10,
        redirect_stdout=False,
        redirect_stderr=True,
    )
