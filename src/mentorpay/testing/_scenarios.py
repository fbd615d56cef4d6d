"""Stripe's test scenarios for the offline checkout, and the fake clock that drives them.

A scenario is what the customer does on the checkout page (the card works, is declined, a bank
debit is authorized, ...) and what Stripe does afterwards on its own: a bank debit settles or
fails three days later, an inquiry or a dispute arrives two days after the payment and closes
ten days after that. The first part happens at once; the rest is scheduled on a
:class:`FakeClock`, and happens when the test kit (or the offline page's clock control)
advances it. Every step changes the fake Stripe's objects first, so the webhook events carry
them as Stripe would at that moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args

from mentorpay._clock import utcnow
from mentorpay.errors import InvalidRequestError
from mentorpay.testing._gateway import FakeGateway

__all__ = [
    "BANK_DEBIT_DELAY",
    "SCENARIOS",
    "FakeClock",
    "Outcome",
    "Scenario",
    "Step",
    "check_scenario",
    "play",
]

Scenario = Literal[
    "card", "card_declined", "bank_debit", "bank_debit_fails", "inquiry", "dispute_lost"
]
#: What becomes of the checkout at once: paid, declined (still open) or pending (bank debit).
Outcome = Literal["paid", "declined", "pending"]

#: Each scenario, as the offline checkout page offers it.
SCENARIOS: Final[dict[Scenario, str]] = {
    "card": "Card succeeds (4242 4242 4242 4242)",
    "card_declined": "Card declined (4000 0000 0000 0002)",
    "bank_debit": "Bank debit: pending, paid 3 days later",
    "bank_debit_fails": "Bank debit: pending, fails 3 days later",
    "inquiry": "Card succeeds, then an inquiry (opened after 2 days, closed 10 days later)",
    "dispute_lost": "Card succeeds, then a dispute (opened after 2 days, lost 10 days later)",
}
BANK_DEBIT_DELAY: Final = timedelta(days=3)
DISPUTE_AFTER: Final = timedelta(days=2)
DISPUTE_CLOSES_AFTER: Final = timedelta(days=10)

#: ``(event type, object)`` pairs, in the order Stripe sends them.
Events = list[tuple[str, dict[str, Any]]]


class FakeClock:
    """A clock that tests and the offline page move forward; thread-safe.

    With ``start`` it stands still at ``start`` until advanced; without, it runs with the real
    clock, shifted by every :meth:`advance`.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise InvalidRequestError("FakeClock needs an aware start (tzinfo=UTC)")
        self._start = start
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            base = self._start if self._start is not None else utcnow()
            return base + self._offset

    @property
    def offset(self) -> timedelta:
        """How far it was moved forward in all."""
        with self._lock:
            return self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Move forward (never back); returns the new now."""
        if delta < timedelta(0):
            raise InvalidRequestError("the fake clock only moves forward")
        with self._lock:
            self._offset += delta
        return self()


@dataclass(frozen=True, slots=True)
class Step:
    """Something Stripe does on its own at ``due``; ``act`` returns the events it sends."""

    due: datetime
    label: str
    act: Callable[[], Events]


def check_scenario(value: str | None) -> Scenario:
    """A scenario name from a form or query string (None: ``card``); else 400."""
    name = value or "card"
    for known in get_args(Scenario):
        if name == known:
            return known  # type: ignore[no-any-return]
    raise InvalidRequestError(
        f"unknown offline checkout scenario {name!r}; choose one of {', '.join(SCENARIOS)}",
        field="scenario",
    )


def play(
    gateway: FakeGateway, session_id: str, scenario: Scenario, now: datetime
) -> tuple[Outcome, Events, list[Step]]:
    """What the customer's choice does now (its events) and the steps Stripe takes later."""
    if scenario == "card_declined":
        return (
            "declined",
            [("payment_intent.payment_failed", gateway.decline_checkout_session(session_id))],
            [],
        )
    if scenario in ("bank_debit", "bank_debit_fails"):
        session = gateway.complete_checkout_session(session_id, delayed=True)
        intent = gateway.payment_intent(str(session["payment_intent"]))
        succeeded = scenario == "bank_debit"
        settle = Step(
            now + BANK_DEBIT_DELAY,
            "the bank debit succeeds" if succeeded else "the bank debit fails",
            lambda: _settle(gateway, session_id, succeeded),
        )
        return (
            "pending",
            [("checkout.session.completed", session), ("payment_intent.processing", intent)],
            [settle],
        )
    session = gateway.complete_checkout_session(session_id)
    pi = str(session["payment_intent"])
    events: Events = [
        ("checkout.session.completed", session),
        ("payment_intent.succeeded", gateway.payment_intent(pi)),
    ]
    if scenario == "card":
        return "paid", events, []
    return "paid", events, _dispute_steps(gateway, pi, now, inquiry=scenario == "inquiry")


def _settle(gateway: FakeGateway, session_id: str, succeeded: bool) -> Events:
    session, intent = gateway.settle_delayed_payment(session_id, succeeded=succeeded)
    if succeeded:
        return [
            ("checkout.session.async_payment_succeeded", session),
            ("payment_intent.succeeded", intent),
        ]
    return [
        ("checkout.session.async_payment_failed", session),
        ("payment_intent.payment_failed", intent),
    ]


def _dispute_steps(
    gateway: FakeGateway, payment_intent_id: str, now: datetime, *, inquiry: bool
) -> list[Step]:
    opened: dict[str, str] = {}
    kind = "an inquiry" if inquiry else "a dispute"

    def open_() -> Events:
        dispute = gateway.open_dispute(payment_intent_id, inquiry=inquiry)
        opened["id"] = dispute["id"]
        return [("charge.dispute.created", dispute)]

    def close() -> Events:
        return [("charge.dispute.closed", gateway.close_dispute(opened["id"], won=False))]

    opens_at = now + DISPUTE_AFTER
    return [
        Step(opens_at, f"{kind} is opened", open_),
        Step(
            opens_at + DISPUTE_CLOSES_AFTER,
            "the inquiry closes" if inquiry else "the dispute is lost",
            close,
        ),
    ]
