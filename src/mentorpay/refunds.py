"""Refunds initiated by the platform.

:meth:`RefundService.refund` validates the request against the recorded payment and asks Stripe
to refund, under a deterministic idempotency key. It writes nothing: the ledger changes only
when Stripe's ``charge.refunded`` webhook arrives (or reconciliation replays it), and that
handler posts by the charge's cumulative ``amount_refunded``, so the refund is applied exactly
once however many times either side is delivered.

Idempotency key: by default the payment intent plus the cumulative amount refunded *after* this
refund (``mentorpay:refund:pi_...:to:3000``). A double click, or a retry after a lost answer,
therefore asks for the same refund and Stripe performs it once. Pass ``request_id`` (your own
id for the refund, e.g. a support ticket) to key on that instead: needed only to issue two
equal partial refunds before the first one's webhook has arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from mentorpay.config import MentorpayConfig
from mentorpay.db import read_connection
from mentorpay.errors import (
    ConflictError,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidRequestError,
    PaymentNotFoundError,
)
from mentorpay.gateway import REFUND_REASONS, PaymentGateway, refund_idempotency_key
from mentorpay.models import payments_table as _payments
from mentorpay.money import Money, check_charge_amount

__all__ = ["RefundResult", "RefundService"]


@dataclass(frozen=True, slots=True)
class RefundResult:
    """What Stripe accepted. The ledger follows when ``charge.refunded`` arrives."""

    refund_id: str
    payment_intent_id: str
    amount: Money
    status: str
    idempotency_key: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        return {
            "refund_id": self.refund_id,
            "payment_intent_id": self.payment_intent_id,
            "amount": self.amount.amount,
            "currency": self.amount.currency,
            "amount_display": str(self.amount),
            "status": self.status,
        }


class RefundService:
    """Platform refunds through the gateway; see the module docstring."""

    def __init__(self, config: MentorpayConfig, engine: Engine, gateway: PaymentGateway) -> None:
        self._config = config
        self._engine = engine
        self._gateway = gateway

    def refund(
        self,
        payment_intent_id: str,
        amount: Money | None = None,
        reason: str | None = None,
        *,
        request_id: str | None = None,
    ) -> RefundResult:
        """Refund ``amount`` of a recorded payment (everything still refundable if ``None``).

        Raises :class:`PaymentNotFoundError` for an unknown payment intent,
        :class:`ConflictError` when nothing is left to refund, :class:`CurrencyMismatchError`,
        :class:`InvalidAmountError` (not positive, above what remains, or breaking Stripe's
        currency rules), :class:`InvalidRequestError` for an unknown ``reason``, and
        :class:`GatewayError` subclasses when Stripe refuses (nothing is written either way).
        """
        if reason is not None and reason not in REFUND_REASONS:
            raise InvalidRequestError(
                f"refund reason must be one of {sorted(REFUND_REASONS)}, got {reason!r}",
                reason=reason,
            )
        if request_id is not None and not request_id.strip():
            raise InvalidRequestError("request_id cannot be empty")
        with read_connection(self._engine) as conn:
            row = conn.execute(
                select(_payments).where(_payments.c.payment_intent_id == payment_intent_id)
            ).first()
        if row is None:
            raise PaymentNotFoundError(
                f"no payment recorded for {payment_intent_id}", payment_intent_id=payment_intent_id
            )
        currency = row.currency
        # Refunds and lost disputes both returned money to the payer; neither can be refunded.
        remaining = Money(row.amount - row.amount_reversed, currency)
        if not remaining.is_positive():
            raise ConflictError(
                f"payment {payment_intent_id} has nothing left to refund",
                payment_intent_id=payment_intent_id,
                refundable=0,
            )
        if amount is None:
            value = remaining
        else:
            if not isinstance(amount, Money):
                raise TypeError(f"amount must be Money or None, not {type(amount).__name__}")
            if amount.currency != currency:
                raise CurrencyMismatchError(
                    f"payment {payment_intent_id} is in {currency}, the refund in "
                    f"{amount.currency}",
                    currency=currency,
                    other_currency=amount.currency,
                )
            if not amount.is_positive():
                raise InvalidAmountError(
                    f"a refund must be positive, got {amount}",
                    amount=amount.amount,
                    currency=currency,
                )
            if amount > remaining:
                raise InvalidAmountError(
                    f"refund of {amount} exceeds the {remaining} still refundable on "
                    f"{payment_intent_id}",
                    amount=amount.amount,
                    currency=currency,
                    refundable=remaining.amount,
                )
            value = amount
        check_charge_amount(value)  # three-decimal currencies end in 0, ISK/UGX in 00
        key = refund_idempotency_key(
            payment_intent_id,
            cumulative_target=row.amount_refunded + value.amount,
            request_id=request_id,
        )
        connect = self._config.connect_destination_charges
        refund = self._gateway.create_refund(
            payment_intent_id=payment_intent_id,
            amount=value,
            idempotency_key=key,
            reason=reason,
            metadata={
                "booking_id": row.booking_id,
                "mentor_id": row.mentor_id,
                "mentee_id": row.mentee_id,
            },
            reverse_transfer=self._config.refund_reverse_transfer if connect else None,
            refund_application_fee=self._config.refund_application_fee if connect else None,
        )
        return RefundResult(
            refund_id=refund.id,
            payment_intent_id=payment_intent_id,
            amount=Money(refund.amount, refund.currency or currency),
            status=refund.status,
            idempotency_key=key,
        )
