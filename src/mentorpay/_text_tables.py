"""Plain-text tables for the terminal (the command line and the demo); nothing to do with SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mentorpay.ledger import BalanceView

__all__ = ["BALANCE_HEADERS", "balance_rows", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table (numbers right-aligned)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: list[str], raw: Sequence[object] | None) -> str:
        parts = []
        for i, cell in enumerate(row):
            numeric = raw is not None and not isinstance(raw[i], str)
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    lines = [fmt(cells[0], None), "  ".join("-" * w for w in widths)]
    lines += [fmt(c, r) for c, r in zip(cells[1:], rows, strict=True)]
    return "\n".join(lines)


def balance_rows(views: Sequence[BalanceView]) -> list[list[object]]:
    """Rows of a balance table, one per mentor and currency."""
    return [
        [
            v.mentor_id,
            v.currency,
            str(v.total_earned).split()[0],
            str(v.pending).split()[0],
            str(v.available).split()[0],
            str(v.held).split()[0],
            str(v.reserved).split()[0],
            str(v.withdrawn).split()[0],
        ]
        for v in views
    ]


BALANCE_HEADERS = (
    "mentor",
    "currency",
    "total_earned",
    "pending",
    "available",
    "held",
    "reserved",
    "withdrawn",
)
