"""``mentorpay accounts ...``: mentors' Stripe connected accounts, as account.updated left them."""

from __future__ import annotations

import argparse

from mentorpay._text_tables import table
from mentorpay.cli._context import facade, print_json
from mentorpay.cli._output import EXIT_OK, Output
from mentorpay.errors import MentorNotFoundError

__all__ = ["cmd_accounts_list", "cmd_accounts_show"]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def cmd_accounts_list(args: argparse.Namespace, out: Output) -> int:
    """Every mentor's account: state, charges and payouts enabled, how much is due."""
    mp = facade(args)
    try:
        accounts = mp.accounts.list(limit=args.limit)
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, [a.as_dict() for a in accounts])
        return EXIT_OK
    if not accounts:
        out.line("no mentor accounts (mp.accounts.onboard creates them)")
        return EXIT_OK
    rows: list[list[object]] = [
        [
            a.mentor_id,
            a.account_id or "",
            a.state,
            _yes(a.charges_enabled),
            _yes(a.payouts_enabled),
            len(a.currently_due) + len(a.past_due),
        ]
        for a in accounts
    ]
    out.line(table(["mentor", "account", "state", "charges", "payouts", "due"], rows))
    return EXIT_OK


def cmd_accounts_show(args: argparse.Namespace, out: Output) -> int:
    """One mentor's account in full, with every requirement Stripe says is due."""
    mp = facade(args)
    try:
        status = mp.accounts.status(args.mentor)
    finally:
        mp.engine.dispose()
    if status is None:
        raise MentorNotFoundError(
            f"mentor {args.mentor} has no Stripe account (never onboarded)", mentor_id=args.mentor
        )
    if args.json:
        print_json(out, status.as_dict())
        return EXIT_OK
    out.line(f"mentor {status.mentor_id}: {status.account_id or '(being created)'}")
    out.line(f"  state: {status.state} ({'live' if status.livemode else 'test'} mode)")
    out.line(f"  details submitted: {_yes(status.details_submitted)}")
    out.line(f"  charges enabled: {_yes(status.charges_enabled)}")
    out.line(f"  payouts enabled: {_yes(status.payouts_enabled)}")
    out.line(f"  currently due: {', '.join(status.currently_due) or 'nothing'}")
    out.line(f"  past due: {', '.join(status.past_due) or 'nothing'}")
    if status.disabled_reason:
        out.line(f"  disabled reason: {status.disabled_reason}")
    out.line(f"  updated: {status.updated_at.isoformat()}")
    return EXIT_OK
