"""The reference ``PlanSource``: plans kept in memory."""

from __future__ import annotations

from collections.abc import Iterable

from mentorpay.plans.info import PlanInfo

__all__ = ["InMemoryPlans"]


class InMemoryPlans:
    """A ``PlanSource`` over a dict; ``add`` replaces a plan with the same id."""

    def __init__(self, plans: Iterable[PlanInfo] = ()) -> None:
        self._plans = {p.id: p for p in plans}

    def add(self, plan: PlanInfo) -> None:
        """Add or replace a plan."""
        self._plans[plan.id] = plan

    def get_plan(self, plan_id: str) -> PlanInfo | None:
        """The plan, or ``None``."""
        return self._plans.get(plan_id)

    def all(self) -> list[PlanInfo]:
        """Every plan, in the order added."""
        return list(self._plans.values())
