"""Reconciliation runs: each run's outcome, kept so an operator sees when Stripe and the ledger
were last compared and what was found (``mentorpay_reconcile_runs``; this module is its owner).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from mentorpay.db import read_connection, run_in_transaction
from mentorpay.models import reconcile_runs_table as _runs
from mentorpay.reconcile.report import RECONCILE_KINDS, ReconcileReport

__all__ = ["ReconcileRun", "last_run", "record_run"]


@dataclass(frozen=True, slots=True)
class ReconcileRun:
    """One finished reconciliation: its period, whether it applied, what it found."""

    id: int
    since: datetime
    until: datetime
    applied: bool
    ok: bool
    discrepancies: int
    events_applied: int
    #: Discrepancies per kind (payments, refunds, disputes, transfers).
    by_kind: dict[str, int]
    finished_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, timestamps in ISO 8601."""
        return {
            "id": self.id,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "applied": self.applied,
            "ok": self.ok,
            "discrepancies": self.discrepancies,
            "events_applied": self.events_applied,
            "by_kind": dict(self.by_kind),
            "finished_at": self.finished_at.isoformat(),
        }


def record_run(engine: Engine, report: ReconcileReport, now: datetime, retries: int) -> None:
    """Store one finished run, in its own transaction."""
    by_kind = {kind: len(report.kinds[kind].items) for kind in RECONCILE_KINDS}
    values = {
        "since": report.since,
        "until": report.until,
        "applied": report.apply,
        "ok": report.ok,
        "discrepancies": len(report.discrepancies),
        "events_applied": len(report.applied),
        "summary": json.dumps(by_kind, sort_keys=True),
        "finished_at": now,
    }
    insert = _runs.insert().values(**values)
    run_in_transaction(engine, lambda conn: conn.execute(insert), retries=retries)


def last_run(engine: Engine) -> ReconcileRun | None:
    """The most recent run (by id), or None when reconciliation never ran."""
    with read_connection(engine) as conn:
        row = conn.execute(select(_runs).order_by(_runs.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    m = row._mapping
    return ReconcileRun(
        id=int(m["id"]),
        since=m["since"],
        until=m["until"],
        applied=bool(m["applied"]),
        ok=bool(m["ok"]),
        discrepancies=int(m["discrepancies"]),
        events_applied=int(m["events_applied"]),
        by_kind={str(k): int(v) for k, v in json.loads(m["summary"]).items()},
        finished_at=m["finished_at"],
    )
