"""``LedgerService.verify``: recompute every balance from the journal, check every transaction
balances and the platform accounts against the payments table.

Incremental by default: a clean pass stores the journal's sums per account, mentor and currency
up to an entry id (the checkpoint table, owned here), and the next pass adds only the entries
after it. ``full=True`` ignores the checkpoint and reads the whole journal (a tampered old entry
is only visible to it). The horizon a checkpoint may cover is an id below which every entry is
committed: SQLite has one writer, so every id of a snapshot is; on PostgreSQL ids are handed
out before commit, so a short SHARE lock on the journal waits out in-flight writers first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, delete, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from mentorpay._clock import utcnow
from mentorpay.db import placeholder, read_connection, run_in_transaction, time_binder
from mentorpay.ledger.rules import BALANCE_ACCOUNTS, CLEARING, COMMISSION, STRIPE_FEES, SUSPENSE
from mentorpay.ledger.views import VerifyReport
from mentorpay.models import balances_table as _balances
from mentorpay.models import entries_table as _entries
from mentorpay.models import ledger_checkpoints_table as _checkpoints
from mentorpay.models import payments_table as _payments
from mentorpay.models import transactions_table as _transactions

#: (account, mentor id or "" for the platform, currency)
Key = tuple[str, str, str]
_STEPS = 6
#: How long the horizon's SHARE lock may wait: writers queue behind it meanwhile, so a webhook
#: stalls at most this long; not granted, the checkpoint simply does not move this time.
_LOCK_TIMEOUT = "250ms"


@dataclass
class _Checkpoint:
    entry_id: int = 0
    transaction_id: int = 0
    transactions: int = 0
    sums: dict[Key, int] = field(default_factory=dict)


def verify(
    engine: Engine,
    *,
    full: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> VerifyReport:
    """Check the journal against the balances and the payments table (see the module doc).

    Runs on one snapshot, so it can be run beside live traffic without false alarms; writes a
    new checkpoint only when nothing disagrees."""

    def step(done: int) -> None:
        if progress is not None:
            progress(done, _STEPS, "verifying")

    problems: list[str] = []
    horizon = _committed_horizon(engine)
    step(1)
    with read_connection(engine, snapshot=True) as conn:
        base = _Checkpoint() if full else _load(conn)
        if horizon is None:  # SQLite: the snapshot's ids are all committed
            horizon = _max_ids(conn)
        entry_horizon = max(horizon[0], base.entry_id)
        txn_horizon = max(horizon[1], base.transaction_id)
        for txn_id, cur, total in conn.execute(
            select(_entries.c.transaction_id, _entries.c.currency, func.sum(_entries.c.amount))
            .where(_entries.c.id > base.entry_id)
            .group_by(_entries.c.transaction_id, _entries.c.currency)
            .having(func.sum(_entries.c.amount) != 0)
        ):
            problems.append(f"transaction {txn_id} does not balance in {cur}: {total}")
        step(2)
        sums: dict[Key, int] = dict(base.sums)  # everything this snapshot holds
        moved: dict[Key, int] = {}  # the checkpoint's totals that change (up to the horizon)
        read = 0
        for account, mentor, cur, below, total, count in _new_sums(
            conn, base.entry_id, entry_horizon
        ):
            key = (account, mentor or "", cur)
            sums[key] = sums.get(key, 0) + int(total)
            if below:
                moved[key] = moved.get(key, base.sums.get(key, 0)) + int(total)
            read += int(count)
        step(3)
        balances = _check_balances(conn, sums, problems)
        step(4)
        _check_against_payments(conn, sums, problems)
        step(5)
        new_txns = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((_transactions.c.id <= txn_horizon, 1), else_=0)), 0),
            ).where(_transactions.c.id > base.transaction_id)
        ).one()
    transactions = base.transactions + int(new_txns[0])
    moves = entry_horizon != base.entry_id or txn_horizon != base.transaction_id
    if not problems and (moves or full):
        stored = _Checkpoint(
            entry_horizon, txn_horizon, base.transactions + int(new_txns[1]), moved
        )
        run_in_transaction(engine, lambda c: _store(c, base, stored, clock(), replace=full))
    step(6)
    return VerifyReport(
        not problems,
        problems,
        transactions,
        balances,
        incremental=base.entry_id > 0,
        entries_read=read,
    )


def _committed_horizon(engine: Engine) -> tuple[int, int] | None:
    """PostgreSQL: the highest entry and transaction ids below which every row is committed
    (a SHARE lock waits for the writers in flight and is released at once); None on SQLite,
    whose snapshot never misses a lower id. (0, 0) when the lock is not granted in time: the
    checkpoint then does not move."""
    if engine.dialect.name == "sqlite":
        return None

    def read(conn: Connection) -> tuple[int, int]:
        conn.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'"))
        conn.execute(
            text("LOCK TABLE mentorpay_ledger_transactions, mentorpay_ledger_entries IN SHARE MODE")
        )
        return _max_ids(conn)

    try:
        return run_in_transaction(engine, read)
    except DBAPIError:
        return (0, 0)


def _max_ids(conn: Connection) -> tuple[int, int]:
    entry = conn.execute(select(func.max(_entries.c.id))).scalar()
    txn = conn.execute(select(func.max(_transactions.c.id))).scalar()
    return int(entry or 0), int(txn or 0)


def _load(conn: Connection) -> _Checkpoint:
    c = _checkpoints.c
    header = conn.execute(
        select(c.upto_entry_id, c.upto_transaction_id, c.transactions).where(c.account == "")
    ).first()
    if header is None:
        return _Checkpoint()
    rows = conn.execute(select(c.account, c.mentor_id, c.currency, c.total).where(c.account != ""))
    sums = {(a, m, cur): int(total) for a, m, cur, total in rows}
    return _Checkpoint(int(header[0]), int(header[1]), int(header[2]), sums)


def _store(
    conn: Connection, base: _Checkpoint, cp: _Checkpoint, now: datetime, *, replace: bool
) -> None:
    """Move the checkpoint from ``base`` to ``cp``: the header row takes the new horizon, and
    only the totals that changed are written (``replace``: a full pass rewrites them all). A
    row's own ``upto_*`` say when its total was last written; the header's are the
    checkpoint's. An incremental pass moves it only from where it read it (the header row
    locked): another verify that moved it meanwhile wins, and ours is dropped. Stores are
    serialized (SQLite's single writer, a table lock on PostgreSQL)."""
    c = _checkpoints.c
    if conn.dialect.name != "sqlite":  # SQLite's writers are serialized already
        # Stores one at a time: a row-level lock cannot cover a header not written yet.
        conn.execute(text("LOCK TABLE mentorpay_ledger_checkpoints IN EXCLUSIVE MODE"))
    if not replace:
        current = conn.execute(
            select(c.upto_entry_id, c.upto_transaction_id).where(c.account == "").with_for_update()
        ).first()
        found = (int(current[0]), int(current[1])) if current else (0, 0)
        if found != (base.entry_id, base.transaction_id):
            return
    if replace:
        conn.execute(delete(_checkpoints))
    stamp = time_binder(conn.dialect)(now)
    upto = (cp.entry_id, cp.transaction_id, cp.transactions, stamp)
    rows = [("", "", "", 0, *upto)]
    rows += [(a, m, cur, total, *upto) for (a, m, cur), total in cp.sums.items()]
    # One driver-level executemany (SQLAlchemy would compile a statement per chunk of rows).
    conn.exec_driver_sql(_upsert_sql(placeholder(conn)), rows)


def _upsert_sql(p: str) -> str:
    """The checkpoint row upsert, with the driver's parameter marker ``p``."""
    return _UPSERT.replace("?", p)


_UPSERT = (
    "INSERT INTO mentorpay_ledger_checkpoints (account, mentor_id, currency, total,"
    " upto_entry_id, upto_transaction_id, transactions, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (account, mentor_id, currency) DO UPDATE SET total = excluded.total,"
    " upto_entry_id = excluded.upto_entry_id,"
    " upto_transaction_id = excluded.upto_transaction_id,"
    " transactions = excluded.transactions, created_at = excluded.created_at"
)


def _new_sums(conn: Connection, after: int, horizon: int) -> Any:
    """Sums of the entries after ``after`` per account, mentor and currency, split at
    ``horizon`` (below it: part of the next checkpoint)."""
    below = case((_entries.c.id <= horizon, 1), else_=0)
    return conn.execute(
        select(
            _entries.c.account,
            _entries.c.mentor_id,
            _entries.c.currency,
            below,
            func.sum(_entries.c.amount),
            func.count(),
        )
        .where(_entries.c.id > after)
        .group_by(_entries.c.account, _entries.c.mentor_id, _entries.c.currency, below)
    )


def _check_balances(conn: Connection, sums: dict[Key, int], problems: list[str]) -> int:
    """Every stored balance must equal its accounts' sums; returns how many rows there are."""
    expected: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (account, mentor, cur), total in sums.items():
        if not mentor:
            continue
        column = BALANCE_ACCOUNTS.get(account)
        if column is None:
            problems.append(f"entry for mentor {mentor} on platform account {account}")
            continue
        expected[(mentor, cur)][column] += total
    rows = conn.execute(select(_balances)).all()
    seen: set[tuple[str, str]] = set()
    for row in rows:
        m = row._mapping
        key = (m["mentor_id"], m["currency"])
        seen.add(key)
        for column in BALANCE_ACCOUNTS.values():
            want = expected.get(key, {}).get(column, 0)
            if m[column] != want:
                problems.append(
                    f"mentor {key[0]} {key[1]} {column}: stored {m[column]}, entries say {want}"
                )
    for key, cols in expected.items():
        if key not in seen and any(cols.values()):
            problems.append(f"mentor {key[0]} {key[1]} has entries but no balance row")
    return len(rows)


def _check_against_payments(conn: Connection, sums: dict[Key, int], problems: list[str]) -> None:
    """Platform accounts must equal what the payments table says they should be (one scan)."""
    journal: dict[tuple[str, str], int] = defaultdict(int)
    for (account, _mentor, cur), total in sums.items():
        journal[(account, cur)] += total
    p = _payments.c
    in_review = p.review_reason.is_not(None)
    fee = p.platform_fee - p.fee_reversed
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for cur, clearing, commission, suspense, stripe_fees in conn.execute(
        select(
            p.currency,
            # Stripe's fees leave clearing too (what Stripe holds for the platform shrinks).
            -func.sum(p.amount - p.amount_reversed - p.stripe_fee),
            # A reviewed payment's whole gross is stored as its "fee": it sits on suspense.
            func.sum(case((in_review, 0), else_=fee)),
            func.sum(case((in_review, fee), else_=0)),
            -func.sum(p.stripe_fee),
        ).group_by(p.currency)
    ):
        expected[(CLEARING, cur)] = int(clearing or 0)
        expected[(COMMISSION, cur)] = int(commission or 0)
        expected[(SUSPENSE, cur)] = int(suspense or 0)
        expected[(STRIPE_FEES, cur)] = int(stripe_fees or 0)
    for account in (COMMISSION, SUSPENSE, CLEARING, STRIPE_FEES):
        currencies = {c for a, c in journal if a == account} | {c for a, c in expected}
        for cur in sorted(currencies):
            got, want = journal.get((account, cur), 0), expected.get((account, cur), 0)
            if got != want:
                problems.append(f"{account} {cur}: journal {got}, payments table {want}")
