"""What mentorpay needs to know about a plan, and the protocol the host app implements.

Plans come from the host, like bookings: a monthly plan (``kind="subscription"``: ``sessions``
sessions every ``interval``, renewed until cancelled) or a prepaid package
(``kind="package"``: ``sessions`` sessions bought at once, usable for ``validity``). mentorpay
needs no Stripe Product or Price: Checkout gets ``price_data`` inline (with ``recurring`` for
subscriptions), unless the host names an existing ``stripe_price_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal, Protocol, runtime_checkable

from mentorpay.errors import InvalidRequestError
from mentorpay.money import Money

__all__ = [
    "DEFAULT_PACKAGE_VALIDITY",
    "PlanInfo",
    "PlanInterval",
    "PlanKind",
    "PlanSource",
]

PlanKind = Literal["subscription", "package"]
#: Stripe's recurring intervals.
PlanInterval = Literal["day", "week", "month", "year"]

#: How long a package's credits stay usable when the plan does not say.
DEFAULT_PACKAGE_VALIDITY: Final = timedelta(days=90)

_MAX_SESSIONS: Final = 1000
_MAX_INTERVAL_COUNT: Final = {"day": 365, "week": 52, "month": 12, "year": 3}


@dataclass(frozen=True, slots=True)
class PlanInfo:
    """A plan as the host app describes it. Ids are strings (pass ``str(id)``).

    ``price`` is per period (subscription) or per package; ``sessions`` the session credits
    each paid period or package grants. Unused credits of a subscription period stay usable
    ``carry_over_periods`` more periods, then expire; a package's expire ``validity`` after
    purchase. Expired credits release the rest of their period's mentor share (the mentor was
    available; the mentee did not book).
    """

    id: str
    mentor_id: str
    kind: PlanKind
    price: Money
    sessions: int
    name: str = ""
    interval: PlanInterval = "month"
    interval_count: int = 1
    validity: timedelta = DEFAULT_PACKAGE_VALIDITY
    carry_over_periods: int = 0
    #: An existing Stripe Price (``price_...``) to sell instead of inline ``price_data``; it
    #: must charge exactly ``price`` every ``interval`` (webhooks check the amounts paid).
    stripe_price_id: str | None = None
    #: The mentor's Stripe connected account, for Connect destination charges.
    mentor_stripe_account: str | None = None
    #: Whether mentees may buy it now (existing subscriptions renew regardless).
    active: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.price, Money) or not self.price.is_positive():
            raise InvalidRequestError(f"plan {self.id}: price must be a positive Money")
        if self.kind not in ("subscription", "package"):
            raise InvalidRequestError(f"plan {self.id}: kind must be subscription or package")
        if isinstance(self.sessions, bool) or not 1 <= self.sessions <= _MAX_SESSIONS:
            raise InvalidRequestError(
                f"plan {self.id}: sessions must be between 1 and {_MAX_SESSIONS}"
            )
        limit = _MAX_INTERVAL_COUNT.get(self.interval)
        if limit is None or not 1 <= self.interval_count <= limit:
            raise InvalidRequestError(f"plan {self.id}: interval must be one of Stripe's")
        if self.validity <= timedelta(0):
            raise InvalidRequestError(f"plan {self.id}: validity must be positive")
        if not 0 <= self.carry_over_periods <= 12:
            raise InvalidRequestError(f"plan {self.id}: carry_over_periods must be 0 to 12")

    @property
    def label(self) -> str:
        """What the mentee sees on Stripe's page."""
        if self.name:
            return self.name
        if self.kind == "subscription":
            every = (
                self.interval
                if self.interval_count == 1
                else (f"{self.interval_count} {self.interval}s")
            )
            return f"{self.sessions} mentoring sessions per {every}"
        return f"{self.sessions} mentoring sessions"


@runtime_checkable
class PlanSource(Protocol):
    """Implemented by the host: look a plan up by id, ``None`` when there is none."""

    def get_plan(self, plan_id: str) -> PlanInfo | None: ...
