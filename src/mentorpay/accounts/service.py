"""AccountService: one Stripe Express account per mentor, its onboarding and dashboard links,
its state from ``account.updated``, and the account checkout and payouts pay to.

Onboarding claims the mentor's row first (unique per mentor), then creates the account at
Stripe under the mentor's deterministic idempotency key (:func:`account_idempotency_key`), then
stores its id: a concurrent call, a retry after a lost answer or a crash in between all end
with the one account Stripe's idempotency returns. Stripe keeps idempotency keys 24 hours:
a retry later than that after a lost answer is the one case this cannot cover.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.accounts import storage
from mentorpay.accounts.rules import (
    AccountObject,
    AccountStatus,
    Purpose,
    choose_destination,
    readiness_refusal,
)
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id, read_connection, run_in_transaction
from mentorpay.errors import AccountNotReadyError, InvalidRequestError, MentorNotFoundError
from mentorpay.gateway import (
    PaymentGateway,
    account_idempotency_key,
    account_link_idempotency_key,
    login_link_idempotency_key,
)

__all__ = ["AccountLink", "AccountService"]

logger = logging.getLogger("mentorpay.accounts")


@dataclass(frozen=True, slots=True)
class AccountLink:
    """Where to send the mentor: Stripe's onboarding (or Express dashboard) for their account."""

    mentor_id: str
    account_id: str
    url: str
    expires_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        return {
            "mentor_id": self.mentor_id,
            "account_id": self.account_id,
            "url": self.url,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def _check_url(name: str, url: object) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(f"{name} must be an absolute http(s) URL", field=name)


class AccountService:
    """Mentors' connected accounts (``mp.accounts``); see the module docstring."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        gateway: PaymentGateway,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._gateway = gateway
        self._clock = clock

    def _tx(self, fn: Callable[[Connection], Any]) -> Any:
        return run_in_transaction(self._engine, fn, retries=self._config.db_retries)

    # -- onboarding -----------------------------------------------------------------------------

    def onboard(self, mentor_id: str, *, refresh_url: str, return_url: str) -> AccountLink:
        """The mentor's Express account (created once) and a fresh onboarding link for it.

        ``refresh_url``: where Stripe sends a mentor whose link expired or was used (call
        ``onboard`` again there); ``return_url``: where the mentor lands after onboarding
        (which does not mean it is complete: ``account.updated`` says so).
        """
        check_id(mentor_id, field="mentor_id")
        _check_url("refresh_url", refresh_url)
        _check_url("return_url", return_url)
        account_id = self._ensure_account(mentor_id)
        issued = int(self._clock().timestamp())
        link = self._gateway.create_account_link(
            account_id,
            refresh_url=refresh_url,
            return_url=return_url,
            idempotency_key=account_link_idempotency_key(account_id, issued),
        )
        return AccountLink(mentor_id, account_id, link.url, link.expires_at)

    def _ensure_account(self, mentor_id: str) -> str:
        key = account_idempotency_key(mentor_id)
        livemode = self._config.livemode
        row = self._tx(
            lambda c: storage.claim(c, mentor_id, key=key, livemode=livemode, now=self._clock())
        )
        if row.account_id is not None:
            return str(row.account_id)
        # Same key for every caller (the row's, fixed at the claim): Stripe makes one account.
        account = self._gateway.create_account(
            mentor_id=mentor_id, idempotency_key=row.idempotency_key
        )
        stored = self._tx(lambda c: storage.set_account(c, mentor_id, account, self._clock()))
        logger.info("mentor %s has Stripe account %s", mentor_id, stored.account_id)
        return str(stored.account_id)

    def dashboard_link(self, mentor_id: str) -> AccountLink:
        """A single-use link into the mentor's Express dashboard (after onboarding)."""
        status = self.status(mentor_id)
        if status is None or status.account_id is None:
            raise MentorNotFoundError(
                f"mentor {mentor_id} has no Stripe account yet; call onboard first",
                mentor_id=mentor_id,
            )
        if not status.details_submitted:
            raise AccountNotReadyError(
                f"mentor {mentor_id} has not finished Stripe onboarding, so there is no "
                "dashboard yet; send them through onboard again",
                mentor_id=mentor_id,
                account_id=status.account_id,
                currently_due=list(status.currently_due),
            )
        issued = int(self._clock().timestamp())
        link = self._gateway.create_login_link(
            status.account_id,
            idempotency_key=login_link_idempotency_key(status.account_id, issued),
        )
        return AccountLink(mentor_id, status.account_id, link.url, link.expires_at)

    # -- queries --------------------------------------------------------------------------------

    def status(self, mentor_id: str) -> AccountStatus | None:
        """The mentor's account as last heard from Stripe; ``None`` if never onboarded."""
        with read_connection(self._engine) as conn:
            row = storage.by_mentor(conn, mentor_id)
        return AccountStatus.from_row(row) if row is not None else None

    def list(self, *, limit: int = 100, not_enabled: bool = False) -> list[AccountStatus]:
        """Every mentor's account, by mentor id (at most ``limit``); with ``not_enabled``, only
        those that cannot take both charges and payouts yet."""
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000", field="limit")
        with read_connection(self._engine) as conn:
            rows = storage.list_rows(conn, limit, not_enabled=not_enabled)
        return [AccountStatus.from_row(r) for r in rows]

    def refresh(self, mentor_id: str) -> AccountStatus:
        """Ask Stripe for the account now (a missed ``account.updated``) and store it."""
        status = self.status(mentor_id)
        if status is None or status.account_id is None:
            raise MentorNotFoundError(f"mentor {mentor_id} has no Stripe account yet")
        account = self._gateway.retrieve_account(status.account_id)
        obj = AccountObject.model_validate(
            {**account.raw, "requirements": account.requirements or {}}
        )
        now = self._clock()
        stamp = int(now.timestamp())
        self._tx(lambda c: storage.apply_event(c, status.account_id or "", obj, stamp, now))
        refreshed = self.status(mentor_id)
        assert refreshed is not None
        return refreshed

    # -- what checkout and payouts pay to -------------------------------------------------------

    def destination(
        self, mentor_id: str, named: str | None, *, purpose: Purpose, require_ready: bool
    ) -> str | None:
        """The connected account to pay for ``purpose`` (see
        :func:`~mentorpay.accounts.rules.choose_destination`); with ``require_ready``, an account
        of mentorpay's that cannot receive it yet is refused (:class:`AccountNotReadyError`)."""
        status = self.status(mentor_id)
        chosen, ours = choose_destination(mentor_id, named, status, purpose)
        if ours and status is not None and (require_ready or chosen is None):
            refusal = readiness_refusal(status, purpose)
            if refusal is not None:
                raise refusal
        return chosen
