"""Hand-written notes under a generated report survive the report's regeneration."""

from __future__ import annotations

from pathlib import Path

#: Text below this line in a report is the author's, and is kept when the part above it is rewritten.
NOTES_MARK = "<!-- notes: kept when the table above is regenerated -->"


def write_keeping_notes(report: Path, generated: str) -> None:
    """Write `generated` to `report`, followed by NOTES_MARK and whatever was below it before."""
    notes = (report.read_text().partition(NOTES_MARK)[2] if report.is_file() else "") or "\n"
    report.write_text(f"{generated}\n{NOTES_MARK}{notes}")
