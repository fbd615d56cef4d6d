"""Spending credits: only on the mentee's own booking with the plan's mentor, once per booking,
never more than are left; ids are checked before anything is read."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from mentorpay.errors import (
    AlreadyPaidError,
    BookingNotFoundError,
    ConflictError,
    InvalidRequestError,
    NotBookingOwnerError,
    PlanNotFoundError,
)
from tests.plan_kit import plan_world


def test_a_credit_is_spent_only_on_the_mentees_booking_with_the_plans_mentor(
    engine: Engine,
) -> None:
    """Another mentee's booking, another mentor's, or an unknown one: refused, nothing spent."""
    w = plan_world(engine)
    purchase = w.buy_package()
    with pytest.raises(NotBookingOwnerError) as not_owner:
        w.mp.plans.consume(purchase, w.book("theirs", mentee="e2"))
    assert not_owner.value.http_status == 403
    with pytest.raises(ConflictError):
        w.mp.plans.consume(purchase, w.book("other-mentor", mentor="m2"))
    with pytest.raises(BookingNotFoundError):
        w.mp.plans.consume(purchase, "no-such-booking")
    assert w.mp.plans.get(purchase).credits_left == 5


def test_spending_again_for_a_booking_returns_the_same_credit(engine: Engine) -> None:
    """consume is idempotent per booking; another purchase cannot pay the same booking."""
    w = plan_world(engine)
    first = w.buy_package()
    credit = w.mp.plans.consume(first, w.book("b1"))
    assert w.mp.plans.consume(first, "b1") == credit
    assert w.mp.plans.credit_for("b1") == credit
    assert w.mp.plans.get(first).credits_left == 4
    monthly = w.subscribe()
    with pytest.raises(AlreadyPaidError):
        w.mp.plans.consume(monthly, "b1")


def test_bad_ids_are_a_400_and_unknown_ones_a_404(engine: Engine) -> None:
    """An id that cannot be one is refused as invalid; a well-formed unknown one is not found."""
    w = plan_world(engine)
    with pytest.raises(InvalidRequestError):
        w.mp.plans.get("x" * 300)
    with pytest.raises(InvalidRequestError):
        w.mp.plans.consume("", "b1")
    with pytest.raises(PlanNotFoundError) as missing:
        w.mp.plans.get("mpp_unknown")
    assert missing.value.http_status == 404


def test_a_released_credit_cannot_be_given_back(engine: Engine) -> None:
    """The session took place: its credit is spent for good; an unspent booking has none."""
    w = plan_world(engine)
    purchase = w.buy_package()
    w.mp.plans.consume(purchase, w.book("b1"))
    w.mp.ledger.release("b1")
    with pytest.raises(ConflictError):
        w.mp.plans.give_back("b1")
    assert w.mp.plans.give_back("never-spent") is False
    assert w.mp.plans.get(purchase).credits_left == 4
