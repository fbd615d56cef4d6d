"""MentorpayConfig: one frozen, validated object; secrets never appear in its repr.

Nothing reads the environment unless the host asks with :meth:`MentorpayConfig.from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url

from mentorpay.cancellation import CancellationPolicy
from mentorpay.commission import CommissionPolicy, CommissionResolver, resolve_policy
from mentorpay.db import Pooler, pooler_from_env
from mentorpay.errors import ConfigurationError
from mentorpay.money import normalize_currency

__all__ = ["DEFAULT_DATABASE_URL", "MentorpayConfig", "hide_password", "key_is_live"]

DEFAULT_DATABASE_URL = "sqlite:///mentorpay.db"
_URL_FIELDS = frozenset({"database_url", "stripe_api_base"})
# Query parameters that carry a credential (libpq takes ?password=...).
_SECRET_QUERY_KEYS = ("password", "secret", "token", "key")


def hide_password(url: str) -> str:
    """``url`` for display: its password, and any password-like query value, as ``***``."""
    try:
        parsed = make_url(url)
        hidden = {
            key: "***"
            for key in parsed.query
            if any(word in key.lower() for word in _SECRET_QUERY_KEYS)
        }
        if hidden:
            parsed = parsed.update_query_dict(hidden)
        return parsed.render_as_string(hide_password=True)
    except Exception:
        # Unparseable, so there is no telling which part is the password.
        return "<unparseable URL>"


class MentorpayConfig(BaseModel):
    """Everything mentorpay needs to know, validated once at construction."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    #: Signing secrets tried in turn: rotation, and platform plus Connect endpoints.
    webhook_secrets: Annotated[tuple[SecretStr, ...], Field(min_length=1)]
    stripe_secret_key: SecretStr | None = None
    #: Which Stripe mode money may move in. Derived from ``stripe_secret_key`` unless given:
    #: ``sk_live_``/``rk_live_`` is live, any other key (or none) is test mode. Events whose
    #: ``livemode`` differs are recorded and ignored, so test cards never credit real money.
    livemode: bool = False
    commission: InstanceOf[CommissionPolicy] = CommissionPolicy(rate_bps=1000)
    #: Per-mentor override: returns a policy for that mentor, or None for the default.
    commission_resolver: CommissionResolver | None = Field(default=None, repr=False)
    webhook_tolerance: Annotated[int, Field(gt=0)] = 300
    max_payload_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    #: How long a payment stays pending before ``release_due`` makes it available.
    hold_period: timedelta = timedelta(days=7)
    #: Connect destination charges: the fee goes to the platform, the rest to the mentor.
    connect_destination_charges: bool = False
    checkout_expiry: timedelta = timedelta(hours=1)
    payout_mode: Literal["stripe_transfer", "manual"] = "manual"
    #: Smallest payout a mentor may request, per currency, in minor units.
    min_payout: Mapping[str, int] = Field(default_factory=dict)
    #: Connect refunds: pull the mentor's share back and return the platform's fee.
    refund_reverse_transfer: bool = True
    refund_application_fee: bool = True
    #: A second payment for an already-paid booking is parked for review; with this set it is
    #: also refunded automatically after commit (under a deterministic idempotency key).
    refund_duplicate_payments: bool = False
    #: What ``mp.bookings.cancel`` refunds: windows by notice, full refund when the mentor or
    #: the platform cancels, the fee kept on a mentee's late cancellation.
    cancellation: InstanceOf[CancellationPolicy] = CancellationPolicy()
    #: Reconciliation also fetches Stripe's fees (one balance transaction per charge of the
    #: period), posts the missing ones on ``stripe_fees`` and reports those that differ.
    reconcile_fees: bool = False
    #: Bounded retries on serialization failures and deadlocks.
    db_retries: Annotated[int, Field(ge=0, le=50)] = 8
    database_url: str = DEFAULT_DATABASE_URL
    #: Where Stripe's API is reached (``stripe-mock``, a local emulator, an egress proxy);
    #: None is Stripe itself. Read from ``STRIPE_API_BASE`` by :meth:`from_env`.
    stripe_api_base: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_livemode(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("livemode") is None:
            data = {k: v for k, v in data.items() if k != "livemode"}
            data["livemode"] = key_is_live(data.get("stripe_secret_key"))
        return data

    #: What sits in front of PostgreSQL: "transaction" (PgBouncer in transaction mode),
    #: "session", "none" (direct); None: not known, so the safe choice (see ``make_engine``).
    pooler: Pooler | None = None

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if isinstance(value, str | SecretStr):
            value = [value]
        if isinstance(value, list | tuple):
            raw = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
            cleaned = [s.strip() for s in raw if isinstance(s, str) and s.strip()]
            if len(cleaned) != len(raw):
                raise ValueError("webhook secrets must be non-empty strings")
            return tuple(cleaned)
        return value

    @field_validator("stripe_api_base")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "stripe_api_base must be an http(s) URL such as http://127.0.0.1:12111"
            )
        # The SDK appends "/v1/...": a trailing slash would make "//v1".
        return value.strip().rstrip("/")

    @field_validator("checkout_expiry")
    @classmethod
    def _stripe_expiry_window(cls, value: timedelta) -> timedelta:
        # Stripe accepts expires_at between 30 minutes and 24 hours after creation.
        if not timedelta(minutes=30) <= value <= timedelta(hours=24):
            raise ValueError("checkout_expiry must be between 30 minutes and 24 hours")
        return value

    @field_validator("hold_period")
    @classmethod
    def _non_negative_hold(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("hold_period cannot be negative")
        return value

    @field_validator("min_payout", mode="before")
    @classmethod
    def _min_payout_currencies(cls, value: Any) -> Any:
        # "before": pydantic's lax mode would otherwise turn 10.0 into 10 silently.
        if not isinstance(value, Mapping):
            return value
        out: dict[str, int] = {}
        for currency, amount in value.items():
            if type(amount) is not int or amount < 0:
                raise ValueError(f"min_payout for {currency} must be a non-negative int")
            out[normalize_currency(currency)] = amount
        return out

    @model_validator(mode="after")
    def _destination_refunds_reverse_transfers(self) -> MentorpayConfig:
        # With destination charges the mentor's share is recorded as withdrawn at capture, and
        # a refund takes it back from there: that is only true if Stripe reverses the transfer.
        if self.connect_destination_charges and not self.refund_reverse_transfer:
            raise ValueError(
                "connect_destination_charges needs refund_reverse_transfer=True: the ledger takes "
                "a refunded mentor share back from the mentor's connected account"
            )
        return self

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            # Pydantic's own message repeats each input value (a secret under a mistyped
            # keyword, the good secret beside an empty one): say where and what, never the value,
            # and drop the chained ValidationError so a logged traceback cannot show it either.
            problems = [
                f"{'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            ]
            raise ConfigurationError(
                "invalid mentorpay configuration: " + "; ".join(problems), problems=problems
            ) from None

    # -- display: URLs may carry a password; the attributes keep the real value ---------------

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in _URL_FIELDS and isinstance(value, str):
                yield name, hide_password(value)
            else:
                yield name, value

    @field_serializer("database_url", "stripe_api_base")
    def _serialize_url(self, value: str | None) -> str | None:
        return None if value is None else hide_password(value)

    def policy_for(self, mentor_id: str) -> CommissionPolicy:
        """The commission policy for one mentor: the resolver's override, else the default.

        A resolver returning anything but a :class:`CommissionPolicy` or ``None`` is a
        ``TypeError`` here, before any amount is split with it."""
        return resolve_policy(self.commission, self.commission_resolver, mentor_id)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> MentorpayConfig:
        """Build from STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET (comma-separated),
        STRIPE_API_BASE, MENTORPAY_DATABASE_URL, MENTORPAY_PGBOUNCER, MENTORPAY_COMMISSION_BPS and
        MENTORPAY_HOLD_DAYS."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        secrets = [s for s in env.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip()]
        if secrets:
            values["webhook_secrets"] = secrets
        if env.get("STRIPE_SECRET_KEY"):
            values["stripe_secret_key"] = env["STRIPE_SECRET_KEY"]
        if env.get("STRIPE_API_BASE"):
            values["stripe_api_base"] = env["STRIPE_API_BASE"]
        if env.get("MENTORPAY_DATABASE_URL"):
            values["database_url"] = env["MENTORPAY_DATABASE_URL"]
        pooler = pooler_from_env(env)
        if pooler is not None:
            values["pooler"] = pooler
        if env.get("MENTORPAY_COMMISSION_BPS"):
            values["commission"] = CommissionPolicy(
                rate_bps=_env_int(env, "MENTORPAY_COMMISSION_BPS")
            )
        if env.get("MENTORPAY_HOLD_DAYS"):
            values["hold_period"] = timedelta(days=_env_int(env, "MENTORPAY_HOLD_DAYS"))
        values.update(overrides)
        if "webhook_secrets" not in values:
            raise ConfigurationError(
                "STRIPE_WEBHOOK_SECRET is not set: mentorpay refuses to accept unsigned webhooks"
            )
        return cls(**values)


def key_is_live(key: object) -> bool:
    """Whether a Stripe secret or restricted key is a live-mode key."""
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return isinstance(key, str) and key.startswith(("sk_live_", "rk_live_"))


def _env_int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {env[name]!r}") from exc
