"""The payment-truth rules alone, without a database: each reason, and agreement when all agree."""

from __future__ import annotations

import dataclasses

import pytest

from mentorpay import BookingInfo, Money
from mentorpay.payment_truth import Claim, Expected, disagreements

GBP = "GBP"
PRICE = Money(5000, GBP)


def expected(source: str = "checkout", **changes: object) -> Expected:
    """Booking 42: mentee 7 pays mentor 3 GBP 50.00, as checkout (or the booking) asked."""
    values: dict[str, object] = {
        "booking_id": "42",
        "mentor_id": "3",
        "mentee_id": "7",
        "price": PRICE,
        "source": source,
    }
    values.update(changes)
    return Expected(**values)  # type: ignore[arg-type]


def booking(**changes: object) -> BookingInfo:
    """The host's booking 42 as it is now."""
    values: dict[str, object] = {
        "id": "42",
        "mentee_id": "7",
        "mentor_id": "3",
        "price": PRICE,
        "status": "confirmed",
    }
    values.update(changes)
    return BookingInfo(**values)  # type: ignore[arg-type]


def claim(gross: Money = PRICE, **ids: str | None) -> Claim:
    """What an event says: the money taken and the ids its metadata names."""
    names = {"booking_id": "42", "mentor_id": "3", "mentee_id": "7", **ids}
    return Claim(gross, names["booking_id"], names["mentor_id"], names["mentee_id"])


def kinds(reasons: list[str]) -> list[str]:
    """The reason codes (the text before the colon)."""
    return [r.split(":", 1)[0] for r in reasons]


@pytest.mark.parametrize("source", ["checkout", "booking"])
def test_a_payment_that_agrees_has_no_reason(source: str) -> None:
    """Kills any inverted comparison: the exact payment of a known, payable booking agrees."""
    assert disagreements(expected(source), claim(), booking(), paid_by=None) == []


def test_metadata_without_ids_is_not_a_mismatch() -> None:
    """Kills `named is not None` -> `is None`: absent metadata ids are not disagreements."""
    bare = claim(booking_id=None, mentor_id=None, mentee_id=None)
    assert disagreements(expected(), bare, booking(), paid_by=None) == []


@pytest.mark.parametrize(
    ("paid", "code"),
    [
        (Money(100, GBP), "amount_mismatch"),
        (Money(5001, GBP), "amount_mismatch"),
        (Money(5000, "JPY"), "currency_mismatch"),
    ],
)
def test_amount_and_currency_must_equal_the_price(paid: Money, code: str) -> None:
    """Under- or over-payment and another currency each give exactly their reason."""
    assert kinds(disagreements(expected(), claim(paid), booking(), paid_by=None)) == [code]


@pytest.mark.parametrize("role", ["booking", "mentor", "mentee"])
def test_metadata_naming_another_id_is_a_mismatch(role: str) -> None:
    """Metadata naming another booking, mentor or mentee disagrees, whatever the money says."""
    reasons = disagreements(expected(), claim(**{f"{role}_id": "999"}), booking(), paid_by=None)
    assert kinds(reasons) == [f"{role}_mismatch"]
    assert "999" in reasons[0]


def test_unknown_booking_is_one_reason_not_two() -> None:
    """An unknown booking without a price says so once (no extra no_price reason)."""
    reasons = disagreements(expected("booking", price=None), claim(), None, paid_by=None)
    assert kinds(reasons) == ["unknown_booking"]


def test_known_booking_without_a_price_is_not_payable_for_money() -> None:
    """Kills `booking is not None` -> `is None` on no_price: a priceless known booking."""
    reasons = disagreements(expected("booking", price=None), claim(), booking(), paid_by=None)
    assert kinds(reasons) == ["no_price"]


@pytest.mark.parametrize(
    "change",
    [{"mentor_id": "4"}, {"mentee_id": "8"}, {"price": Money(6000, GBP)}],
    ids=["reassigned", "other-mentee", "repriced"],
)
def test_booking_changed_after_checkout(change: dict[str, object]) -> None:
    """A booking reassigned or repriced since its checkout session was created disagrees."""
    reasons = disagreements(expected("checkout"), claim(), booking(**change), paid_by=None)
    assert kinds(reasons) == ["booking_changed"]


def test_booking_changes_do_not_apply_to_the_hosts_own_flow() -> None:
    """Kills `source == "checkout"` -> `!=`: the host's flow compares against the booking itself."""
    host = expected("booking", mentor_id="4", price=Money(6000, GBP))
    now = booking(mentor_id="4", price=Money(6000, GBP))
    assert disagreements(host, claim(Money(6000, GBP), mentor_id="4"), now, paid_by=None) == []


@pytest.mark.parametrize("status", ["cancelled", "completed", "paid"])
def test_host_flow_booking_must_be_payable(status: str) -> None:
    """In the host's own flow a booking that is not payable disagrees."""
    reasons = disagreements(expected("booking"), claim(), booking(status=status), paid_by=None)
    assert kinds(reasons) == ["not_payable"]


def test_checkout_flow_does_not_recheck_payability() -> None:
    """Kills `source == "booking"` -> `!=`: checkout already checked it when the session opened."""
    assert disagreements(expected(), claim(), booking(status="paid"), paid_by=None) == []


def test_already_paid_names_the_earlier_payment() -> None:
    """A second payment of a paid booking disagrees and names the payment that paid it."""
    reasons = disagreements(expected(), claim(), booking(), paid_by="pi_first")
    assert kinds(reasons) == ["already_paid"]
    assert "pi_first" in reasons[0]


def test_every_reason_is_reported_together() -> None:
    """Several disagreements are all listed, in a stable order, for the operator."""
    reasons = disagreements(
        expected(), claim(Money(1, "JPY"), mentor_id="999"), None, paid_by="pi_0"
    )
    assert kinds(reasons) == [
        "unknown_booking",
        "currency_mismatch",
        "mentor_mismatch",
        "already_paid",
    ]


@pytest.mark.parametrize("value", [expected(), claim()], ids=["Expected", "Claim"])
def test_facts_are_immutable_values(value: object) -> None:
    """Kills `frozen=True` -> `False`: the facts a decision was made on cannot be changed."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.booking_id = "other"  # type: ignore[attr-defined]
