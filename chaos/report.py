"""A scenario's report: the figures every scenario gives, its own notes, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .tally import Tally

__all__ = ["COLUMNS", "Report", "format_table"]

COLUMNS = (
    "scenario",
    "backend",
    "executions",
    "lost",
    "stuck",
    "completed twice",
    "wrong outputs",
    "extra runs",
    "recovery",
    "result",
)


@dataclass
class Report:
    """What one scenario on one backend found.

    ``recovery_s`` is the scenario's recovery time and ``recovery`` says what it measures
    (each scenario has its own definition); ``problems`` are the scenario's own failed checks,
    next to the tally's.
    """

    scenario: str
    backend: str
    tally: Tally | None = None
    recovery_s: float | None = None
    recovery: str = ""
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: str = ""  # why the scenario could not run here (missing binaries, no root)
    elapsed_s: float = 0.0

    @property
    def failures(self) -> list[str]:
        return [*(self.tally.failures() if self.tally else []), *self.problems]

    @property
    def passed(self) -> bool:
        return not self.failures

    def cells(self) -> list[str]:
        t = self.tally
        counts = (
            [
                str(t.executions),
                str(len(t.lost)),
                str(len(t.stuck)),
                str(len(t.completed_twice)),
                str(len(t.wrong_outputs)),
                str(t.extra_runs),
            ]
            if t is not None
            else ["-"] * 6
        )
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.2f} s"
        verdict = "skipped" if self.skipped else ("ok" if self.passed else "FAILED")
        return [self.scenario, self.backend, *counts, recovery, verdict]

    def details(self) -> list[str]:
        """The lines printed under the table: what recovery measures, notes, failures."""
        head = f"{self.scenario} [{self.backend}]"
        if self.skipped:
            return [f"{head}: skipped: {self.skipped}"]
        lines = [f"{head} ({self.elapsed_s:.0f} s)"]
        if self.recovery:
            lines.append(f"  recovery: {self.recovery}")
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  FAILED: {failure}" for failure in self.failures]
        return lines


def format_table(reports: Sequence[Report]) -> str:
    """The reports as a plain-text table (the figures), then each one's details."""
    rows = [list(COLUMNS), *(report.cells() for report in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if 1 < i < 9 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    for report in reports:
        lines += report.details()
    return "\n".join(lines)
