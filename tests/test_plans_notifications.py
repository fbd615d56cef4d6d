"""Plan receipts and notices: one receipt and one earnings note per paid period, a notice when a
renewal fails or the plan is cancelled, and no booking-style receipt naming a ``plan:`` id."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from mentorpay.testing import OutboxMailer
from tests.plan_kit import plan_world


def test_a_plans_life_sends_receipts_and_notices_once(engine: Engine) -> None:
    """Subscribe, a failed renewal, cancellation: receipts and notices, each once."""
    w = plan_world(engine)
    mailer = OutboxMailer()
    w.mp.send_receipts(mailer, lambda user: f"{user}@example.com")
    purchase = w.subscribe()
    subjects = [m.subject for m in mailer.messages]
    assert subjects == [
        "Receipt: 80.00 GBP for 4 mentoring sessions",
        "You earned 72.00 GBP from a plan",
    ]
    assert all("plan:" not in m.subject + m.body for m in mailer.messages)
    sub = w.mp.plans.get(purchase).subscription_id
    assert sub is not None
    w.clock.advance(timedelta(days=30))
    w.send(w.billing.renew(sub, fail=True))
    w.mp.plans.cancel(purchase, user_id="e1", at_period_end=False)
    w.send(
        [("customer.subscription.deleted", w.billing._subscription(w.gateway.subscription(sub)))]
    )
    to_mentee = [m.subject for m in mailer.to("e1@example.com")]
    assert to_mentee == [
        "Receipt: 80.00 GBP for 4 mentoring sessions",
        "Your plan's payment failed",
        "Your plan was cancelled",
    ]
    w.mp.outbox.deliver_pending()
    assert len(mailer.messages) == 4  # redelivery sends nothing twice
