"""``LedgerService.verify``: recompute every balance from the journal, check every transaction
balances and the platform accounts against the payments table."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from mentorpay.db import read_connection
from mentorpay.ledger.rules import BALANCE_ACCOUNTS, CLEARING, COMMISSION, STRIPE_FEES, SUSPENSE
from mentorpay.ledger.views import VerifyReport
from mentorpay.models import balances_table as _balances
from mentorpay.models import entries_table as _entries
from mentorpay.models import payments_table as _payments
from mentorpay.models import transactions_table as _transactions


def verify(engine: Engine) -> VerifyReport:
    """Recompute every balance from the journal and check every transaction balances.

    Runs on one snapshot, so it can be run beside live traffic without false alarms.
    """
    problems: list[str] = []
    with read_connection(engine, snapshot=True) as conn:
        unbalanced = conn.execute(
            select(_entries.c.transaction_id, _entries.c.currency, func.sum(_entries.c.amount))
            .group_by(_entries.c.transaction_id, _entries.c.currency)
            .having(func.sum(_entries.c.amount) != 0)
        ).all()
        for txn_id, cur, total in unbalanced:
            problems.append(f"transaction {txn_id} does not balance in {cur}: {total}")
        sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for mentor, cur, account, total in conn.execute(
            select(
                _entries.c.mentor_id,
                _entries.c.currency,
                _entries.c.account,
                func.sum(_entries.c.amount),
            )
            .where(_entries.c.mentor_id.is_not(None))
            .group_by(_entries.c.mentor_id, _entries.c.currency, _entries.c.account)
        ):
            column = BALANCE_ACCOUNTS.get(account)
            if column is None:
                problems.append(f"entry for mentor {mentor} on platform account {account}")
                continue
            sums[(mentor, cur)][column] += int(total)
        rows = conn.execute(select(_balances)).all()
        seen: set[tuple[str, str]] = set()
        for row in rows:
            m = row._mapping
            key = (m["mentor_id"], m["currency"])
            seen.add(key)
            for column in BALANCE_ACCOUNTS.values():
                expected = sums.get(key, {}).get(column, 0)
                if m[column] != expected:
                    problems.append(
                        f"mentor {key[0]} {key[1]} {column}: stored {m[column]}, "
                        f"entries say {expected}"
                    )
        for key, cols in sums.items():
            if key not in seen and any(cols.values()):
                problems.append(f"mentor {key[0]} {key[1]} has entries but no balance row")
        for account, column in (
            (COMMISSION, "fee"),
            (SUSPENSE, "suspense"),
            (CLEARING, "clearing"),
            (STRIPE_FEES, "stripe_fees"),
        ):
            _check_against_payments(conn, account, column, problems)
        transactions = conn.execute(select(func.count()).select_from(_transactions)).scalar()
    return VerifyReport(not problems, problems, int(transactions or 0), len(rows))


def _check_against_payments(conn: Connection, account: str, kind: str, problems: list[str]) -> None:
    """Platform accounts must equal what the payments table says they should be."""
    journal: dict[str, Any] = dict(
        conn.execute(
            select(_entries.c.currency, func.sum(_entries.c.amount))
            .where(_entries.c.account == account)
            .group_by(_entries.c.currency)
        ).all()
    )
    expr: Any
    query: Any
    if kind == "clearing":
        # Stripe's fees leave clearing too (what Stripe holds for the platform shrinks).
        expr = -func.sum(_payments.c.amount - _payments.c.amount_reversed - _payments.c.stripe_fee)
        query = select(_payments.c.currency, expr)
    elif kind == "stripe_fees":
        query = select(_payments.c.currency, -func.sum(_payments.c.stripe_fee))
    else:
        # A reviewed payment's whole gross is stored as its "fee": it sits on suspense.
        expr = func.sum(_payments.c.platform_fee - _payments.c.fee_reversed)
        in_review = _payments.c.review_reason.is_not(None)
        query = select(_payments.c.currency, expr).where(
            in_review if kind == "suspense" else _payments.c.review_reason.is_(None)
        )
    expected: dict[str, Any] = dict(conn.execute(query.group_by(_payments.c.currency)).all())
    for cur in set(journal) | set(expected):
        got, want = int(journal.get(cur) or 0), int(expected.get(cur) or 0)
        if got != want:
            problems.append(f"{account} {cur}: journal {got}, payments table {want}")
