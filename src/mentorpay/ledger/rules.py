"""The ledger's posting rules, pure functions of a payment's state (no SQL, no connection):
accounts, payment statuses, and per effect a :class:`Plan` from a :class:`PaymentState` read
under lock: the journal legs, the payment row's new columns, and how much of the payment's open
dispute holds the legs consumed. The rules in words are in the package docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from mentorpay.commission import CommissionPolicy, Split, split_refund
from mentorpay.errors import ConflictError, CurrencyMismatchError
from mentorpay.ledger.state import PaymentState, PaymentStatus
from mentorpay.money import Money

CLEARING: Final = "stripe_clearing"
COMMISSION: Final = "platform_commission"
PENDING: Final = "mentor_pending"
AVAILABLE: Final = "mentor_available"
HELD: Final = "mentor_held"
RESERVED: Final = "mentor_reserved"
WITHDRAWN: Final = "mentor_withdrawn"
SUSPENSE: Final = "platform_suspense"
#: Stripe's fees (processing, disputes): a platform cost, debited as Stripe keeps them.
STRIPE_FEES: Final = "stripe_fees"

#: Mentor account -> column of the materialized balance row.
BALANCE_ACCOUNTS: dict[str, str] = {
    PENDING: "pending",
    AVAILABLE: "available",
    HELD: "held",
    RESERVED: "reserved",
    WITHDRAWN: "withdrawn",
}

#: Payment statuses that leave the booking unpaid, so paying it again is not a double payment:
#: refunded ones gave the money back, reviewed ones credited nobody. Anything else (succeeded,
#: partially refunded, disputed, dispute lost) means the booking is paid. The ledger never writes
#: ``failed``; it stays listed so filters built on this constant keep their meaning.
UNPAID_PAYMENT_STATUSES: tuple[str, ...] = ("failed", "refunded", "needs_review")

Leg = tuple[str, str | None, int]  # (account, mentor_id or None for platform accounts, amount)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one effect writes: journal legs (``None``: no journal transaction), the payment
    row's new columns, the share taken from the payment's open dispute holds, and the amount
    the resulting :class:`~mentorpay.ledger.views.Posting` reports."""

    legs: list[Leg] | None
    updates: dict[str, Any]
    from_held: int = 0
    amount: int = 0


def payment_status(
    *, amount: int, reversed_total: int, refunded: int, disputed: int, in_review: bool = False
) -> PaymentStatus:
    """A payment's label, derived from its amounts so the order events arrived in never matters.

    ``needs_review`` while its money sits on the suspense account (``refunded`` once all of it
    went back). ``refunded`` is the refund total the ledger counts (``refund_applied``: refunds
    net of failed ones), ``reversed_total`` that plus lost disputes. ``disputed`` while a
    dispute is open; ``dispute_lost`` once a lost dispute took money back (more was reversed
    than refunded); else ``refunded``, ``partially_refunded`` or ``succeeded`` by how much was
    reversed.
    """
    if in_review:
        return "refunded" if reversed_total >= amount else "needs_review"
    if disputed > 0:
        return "disputed"
    if reversed_total > refunded:
        return "dispute_lost"
    if reversed_total == 0:
        return "succeeded"
    return "refunded" if reversed_total >= amount else "partially_refunded"


def _status(s: PaymentState, *, reversed_total: int, refunded: int, disputed: int) -> str:
    return payment_status(
        amount=s.amount,
        reversed_total=reversed_total,
        refunded=refunded,
        disputed=disputed,
        in_review=s.review_reason is not None,
    )


def share_account(s: PaymentState) -> str:
    """Where a payment's free mentor share sits: withdrawn (destination charge), pending
    (unreleased) or available (released)."""
    if s.destination is not None:
        return WITHDRAWN
    return PENDING if s.released_at is None else AVAILABLE


def platform_account(s: PaymentState) -> str:
    """The platform's side of a payment: its commission, or suspense while under review."""
    return SUSPENSE if s.review_reason is not None else COMMISSION


def from_free(s: PaymentState, amount: int) -> tuple[list[Leg], int]:
    """Legs taking ``amount`` (at most the free share) out of where the free share sits: a
    plan period's pending part first, then the part its sessions released to available.
    Returns the legs and how much came out of that released part."""
    mentor, pending = s.mentor_id, s.pending_part
    if s.released_at is not None or s.destination is not None or s.payout_released == 0:
        return ([(share_account(s), mentor, -amount)] if amount else []), 0
    from_pending = min(pending, amount)
    from_released = amount - from_pending
    legs: list[Leg] = [(PENDING, mentor, -from_pending)] if from_pending else []
    if from_released:
        legs.append((AVAILABLE, mentor, -from_released))
    return legs, from_released


def take_back(s: PaymentState, amount: int) -> tuple[list[Leg], int, int]:
    """Legs taking ``amount`` of one payment's mentor share back (refund, lost dispute).

    The free share goes first (:func:`from_free`); what it cannot cover comes out of that
    payment's open dispute holds (a refund during an inquiry consumes the money the inquiry
    froze); anything beyond (inconsistent data only) overdraws available. Returns the legs,
    how much came out of holds (the caller lowers ``payout_held`` and shrinks the holds in
    dispute-id order) and how much out of the sessions' released part (``payout_released``).
    """
    if amount <= 0:
        return [], 0, 0
    mentor = s.mentor_id
    free = min(s.free, amount)
    from_held = min(amount - free, s.payout_held)
    overflow = amount - free - from_held
    legs, from_released = from_free(s, free)
    if from_held:
        legs.append((HELD, mentor, -from_held))
    if overflow:
        legs.append((AVAILABLE, mentor, -overflow))
    return legs, from_held, from_released


def give_back(s: PaymentState, amount: int) -> list[Leg]:
    """Legs returning ``amount`` of the mentor's share to where a refund takes it from."""
    if amount == 0:
        return []
    return [(share_account(s), s.mentor_id, amount)]


# -- payments ----------------------------------------------------------------------------------


def capture_split(
    gross: Money, policy: CommissionPolicy, *, platform_fee: Money | None, in_review: bool
) -> Split:
    """The split a captured payment is stored with: the whole gross on the platform's side
    while under review, else what Stripe kept (``platform_fee``) or the policy's split."""
    split = policy.split(gross)
    if in_review:
        return Split(gross, gross, Money.zero(gross.currency), 10_000, split.rounding)
    if platform_fee is not None and platform_fee != split.platform_fee:
        # What Stripe kept wins: the policy may have changed since checkout.
        return Split(gross, platform_fee, gross - platform_fee, split.rate_bps, split.rounding)
    return split


def capture_legs(split: Split, mentor_id: str, *, in_review: bool, destination: bool) -> list[Leg]:
    """A captured payment: clearing pays the fee (or suspense) and the mentor's share (pending,
    or withdrawn for a destination charge)."""
    return [
        (CLEARING, None, -split.gross.amount),
        (SUSPENSE if in_review else COMMISSION, None, split.platform_fee.amount),
        (WITHDRAWN if destination else PENDING, mentor_id, split.mentor_payout.amount),
    ]


def release(s: PaymentState, now: datetime) -> Plan | None:
    """The free share still pending moves to available; ``None`` once released."""
    if s.released_at is not None:
        return None
    amount = s.free - s.payout_released
    legs: list[Leg] = [(PENDING, s.mentor_id, -amount), (AVAILABLE, s.mentor_id, amount)]
    return Plan(legs, {"released_at": now}, amount=amount)


def release_share(s: PaymentState, share: int) -> Plan | None:
    """One delivered session of a plan period: its ``share`` of the payout moves pending ->
    available (no more than is still pending: a refund may have taken the rest); ``None``
    when the period was released as a whole, transferred, or is under review."""
    if s.released_at is not None or s.destination is not None or s.review_reason is not None:
        return None
    amount = max(0, min(share, s.pending_part))
    legs: list[Leg] | None = None
    if amount:
        legs = [(PENDING, s.mentor_id, -amount), (AVAILABLE, s.mentor_id, amount)]
    return Plan(legs, {"payout_released": s.payout_released + amount}, amount=amount)


def review_credit(
    s: PaymentState,
    *,
    booking_id: str,
    mentor_id: str,
    mentee_id: str,
    policy: CommissionPolicy,
    release_due_at: datetime | None,
) -> Plan | None:
    """Suspense -> fee + mentor share of what was paid minus what was already refunded (the
    same cumulative targets a refund uses); ``None`` unless under review."""
    pi = s.payment_intent_id
    if s.review_reason is None:
        return None
    if s.amount_disputed > 0:
        raise ConflictError(
            f"payment {pi} has an open dispute; resolve it after the dispute closes",
            payment_intent_id=pi,
        )
    cur = s.currency
    remaining = s.amount - s.amount_reversed
    if remaining <= 0:
        raise ConflictError(
            f"payment {pi} was refunded in full; nothing to credit", payment_intent_id=pi
        )
    split = policy.split(Money(s.amount, cur))
    reversed_part = split_refund(split, Money.zero(cur), Money(s.amount_reversed, cur))
    fee = split.platform_fee.amount - reversed_part.platform_fee.amount
    payout = split.mentor_payout.amount - reversed_part.mentor_payout.amount
    updates = {
        "booking_id": booking_id,
        "mentor_id": mentor_id,
        "mentee_id": mentee_id,
        "platform_fee": split.platform_fee.amount,
        "mentor_payout": split.mentor_payout.amount,
        "rate_bps": split.rate_bps,
        "rounding": split.rounding,
        "fee_reversed": reversed_part.platform_fee.amount,
        "payout_reversed": reversed_part.mentor_payout.amount,
        "review_reason": None,
        "status": payment_status(
            amount=s.amount,
            reversed_total=s.amount_reversed,
            refunded=s.refund_applied,
            disputed=0,
        ),
        "release_due_at": release_due_at,
    }
    legs: list[Leg] = [
        (SUSPENSE, None, -remaining),
        (COMMISSION, None, fee),
        (PENDING, mentor_id, payout),
    ]
    return Plan(legs, updates, amount=payout)


# -- refunds -----------------------------------------------------------------------------------


def payout_target(s: PaymentState, total: int) -> int:
    """The mentor's share reversed once ``total`` of the payment went back (refunds and lost
    disputes): ``P * R / G`` rounded once (DESIGN.md section 4), except that the first
    ``fee_kept`` of it (refunds the platform keeps its fee on) comes out of the payout only,
    and the rest is pro rata over what is left: ``K + (P - K) * (R - K) / (G - K)``. At
    ``R = G`` it is exactly ``P``; it never exceeds ``R`` nor ``P``."""
    cur, split = s.currency, s.split
    kept = max(0, min(s.fee_kept, total, s.mentor_payout))
    if kept == 0:
        return split_refund(split, Money.zero(cur), Money(total, cur)).mentor_payout.amount
    if total == kept:
        return kept
    rest = Split(
        Money(s.amount - kept, cur),
        split.platform_fee,
        Money(s.mentor_payout - kept, cur),
        split.rate_bps,
        split.rounding,
    )
    part = split_refund(rest, Money.zero(cur), Money(total - kept, cur))
    return kept + part.mentor_payout.amount


def payout_step(s: PaymentState, before: int, after: int) -> int:
    """The mentor's share a move of the reversed total from ``before`` to ``after`` reverses
    (negative: gives back). Without a kept fee, the difference of the pro-rata targets; with
    one, the new target minus what was actually reversed, so the totals land on the target
    whatever order refunds, cancellations and disputes came in."""
    if s.fee_kept == 0:
        return payout_target(s, after) - payout_target(s, before)
    return payout_target(s, after) - s.payout_reversed


def keep_fee(s: PaymentState, refund: int) -> dict[str, Any]:
    """A cancellation refunds ``refund`` with the platform keeping its fee: the payment row's
    new ``fee_kept`` (never more than the mentor's share), set before the refund is sent."""
    return {"fee_kept": min(s.fee_kept + max(refund, 0), s.mentor_payout)}


@dataclass(frozen=True, slots=True)
class RefundChange:
    """What moving a payment to a new refund state posts: ``delta`` leaves clearing (negative:
    comes back), ``fee`` is taken from the commission and ``payout`` from the mentor's share
    (negative: given back). ``values`` are the payment row's new columns."""

    delta: int
    fee: int
    payout: int
    values: dict[str, Any]


def refund_change(
    m: PaymentState | Mapping[str, Any], *, amount_refunded: int, refund_failed: int
) -> RefundChange:
    """The pure posting rule for refunds and failed refunds (see the package docstring).

    ``m`` is the payment's state (or a row mapping); the new state is Stripe's high-water
    ``amount_refunded`` and the failed refunds seen. Cumulative targets make every path to one
    state post the same totals, and a negative difference undoes exactly what a refund took.
    """
    s = m if isinstance(m, PaymentState) else PaymentState.from_mapping(m)
    amount, reversed_before = s.amount, s.amount_reversed
    lost = reversed_before - s.refund_applied
    effective = min(max(amount_refunded - refund_failed, 0), amount - lost)
    delta = effective - s.refund_applied
    reversed_after = reversed_before + delta
    payout = payout_step(s, reversed_before, reversed_after) if delta else 0
    fee = delta - payout
    values = {
        "amount_refunded": amount_refunded,
        "refund_failed": refund_failed,
        "refund_applied": effective,
        "amount_reversed": reversed_after,
        "fee_reversed": s.fee_reversed + fee,
        "payout_reversed": s.payout_reversed + payout,
        "status": _status(
            s, reversed_total=reversed_after, refunded=effective, disputed=s.amount_disputed
        ),
    }
    return RefundChange(delta, fee, payout, values)


def same_currency(s: PaymentState, money: Money, what: str) -> None:
    """A refund in another currency than its payment can never apply: a permanent error."""
    if money.currency != s.currency:
        raise CurrencyMismatchError(
            f"{what} of {s.payment_intent_id} is in {money.currency}, the payment in {s.currency}",
            payment_currency=s.currency,
            refund_currency=money.currency,
            currency=s.currency,
            other_currency=money.currency,
        )


def refund_plan(s: PaymentState, change: RefundChange, *, post: bool = True) -> Plan:
    """Money leaves (or comes back through) clearing; fee and share follow the targets. A share
    taken back may come out of open dispute holds (``from_held``); one given back returns to
    where a refund takes it from. ``post=False``: only the row moves (nothing to journal)."""
    legs: list[Leg] | None = None
    from_held = from_released = 0
    if post:
        if change.payout >= 0:
            share, from_held, from_released = take_back(s, change.payout)
        else:
            share, from_released = give_back(s, -change.payout), 0
        legs = [(CLEARING, None, change.delta), (platform_account(s), None, -change.fee), *share]
    updates = {**change.values, "payout_held": s.payout_held - from_held}
    if from_released:
        updates["payout_released"] = s.payout_released - from_released
    return Plan(legs, updates, from_held, change.delta)


def refund_total(s: PaymentState, amount_refunded: int) -> tuple[RefundChange, Plan] | None:
    """Stripe's cumulative ``amount_refunded``: only a new high changes anything."""
    if amount_refunded <= s.amount_refunded:
        return None
    change = refund_change(s, amount_refunded=amount_refunded, refund_failed=s.refund_failed)
    return change, refund_plan(s, change, post=change.delta != 0)


def refund_failure(s: PaymentState, amount: int) -> Plan:
    """A refund failed: the effective refund total drops by it (nothing moves when it overtook
    its ``charge.refunded``). The plan's ``amount`` is what was un-refunded."""
    change = refund_change(
        s, amount_refunded=s.amount_refunded, refund_failed=s.refund_failed + amount
    )
    return replace(refund_plan(s, change), amount=-change.delta)


# -- disputes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DisputeOpening:
    """A new dispute's row (``disputed`` gross, ``hold`` of the mentor's share) and its plan;
    ``plan`` is ``None`` when nothing was left to dispute (tracked, but nothing moves)."""

    disputed: int
    hold: int
    plan: Plan | None


def dispute_opened(s: PaymentState, amount: Money) -> DisputeOpening:
    """Freeze this dispute's share: the payout target of the disputed amount on top of what is
    already reversed or held by other disputes, never more than is still free."""
    if amount.currency != s.currency:
        raise CurrencyMismatchError(
            "dispute currency differs from the payment's",
            payment_currency=s.currency,
            dispute_currency=amount.currency,
        )
    gross, cur = s.amount, s.currency
    # Clamped by what is still unreversed only: whether another dispute is open at this
    # moment must not change what this one covers (the order events arrive in).
    disputed = max(0, min(amount.amount, gross - s.amount_reversed))
    original, zero = s.split, Money.zero(cur)

    def target(total: int) -> int:
        capped = Money(min(gross, total), cur)
        return split_refund(original, zero, capped).mentor_payout.amount

    covered = s.amount_reversed + s.amount_disputed
    hold = min(target(covered + disputed) - target(covered), s.free)
    if disputed == 0:
        return DisputeOpening(0, hold, None)
    mentor = s.mentor_id
    legs, from_released = from_free(s, hold)
    if hold:
        legs.append((HELD, mentor, hold))
    total = s.amount_disputed + disputed
    updates = {
        "payout_released": s.payout_released - from_released,
        "payout_held": s.payout_held + hold,
        "amount_disputed": total,
        "status": _status(
            s, reversed_total=s.amount_reversed, refunded=s.refund_applied, disputed=total
        ),
    }
    return DisputeOpening(disputed, hold, Plan(legs, updates, amount=hold))


def dispute_closed(s: PaymentState, *, held: int, disputed: int, won: bool) -> Plan:
    """Settle one dispute (``held`` and ``disputed`` are its row's): won gives exactly its hold
    back; lost reverses its amount like a refund. Other open disputes keep their holds unless
    overlapping disputes covered more than was charged (``from_held`` then names that part)."""
    mentor = s.mentor_id
    disputed_left = s.amount_disputed - disputed
    updates: dict[str, Any] = {
        "payout_held": s.payout_held - held,
        "amount_disputed": disputed_left,
    }
    from_other_holds = 0
    if won:
        legs: list[Leg] = [(HELD, mentor, -held), *give_back(s, held)]
        reversed_total = s.amount_reversed
    else:
        applied = max(0, min(disputed, s.amount - s.amount_reversed))
        payout = payout_step(s, s.amount_reversed, s.amount_reversed + applied)
        fee = applied - payout
        legs = [(HELD, mentor, -held)] if held else []
        # The hold was fixed when the dispute opened; refunds since (or rounding of the
        # cumulative targets) can leave it above or below this dispute's exact payout share,
        # and the difference is settled against the payment's free share.
        diff = held - payout
        if diff > 0:
            legs += give_back(s, diff)
        elif diff < 0:
            # The free share first, then other disputes' holds, as a refund would. This
            # dispute's hold leaves with the reversal: it counts as reversed, not as free.
            consumed = replace(
                s, payout_reversed=s.payout_reversed + held, payout_held=s.payout_held - held
            )
            more, from_other_holds, from_released = take_back(consumed, -diff)
            legs += more
            updates["payout_held"] -= from_other_holds
            if from_released:
                updates["payout_released"] = s.payout_released - from_released
        legs += [(CLEARING, None, applied), (platform_account(s), None, -fee)]
        reversed_total = s.amount_reversed + applied
        updates.update(
            amount_reversed=reversed_total,
            fee_reversed=s.fee_reversed + fee,
            payout_reversed=s.payout_reversed + payout,
        )
    updates["status"] = _status(
        s, reversed_total=reversed_total, refunded=s.refund_applied, disputed=disputed_left
    )
    return Plan(legs, updates, from_other_holds, held)


# -- Stripe's fees -------------------------------------------------------------------------------


def stripe_fee(s: PaymentState, fee: int) -> Plan:
    """Stripe kept ``fee`` of a payment's money (negative: gave a fee back): it leaves clearing
    (Stripe holds that much less for the platform) and is booked as a platform cost."""
    legs: list[Leg] = [(CLEARING, None, fee), (STRIPE_FEES, None, -fee)]
    return Plan(legs, {"stripe_fee": s.stripe_fee + fee}, amount=fee)
