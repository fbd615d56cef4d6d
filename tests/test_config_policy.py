"""MentorpayConfig.policy_for goes through commission.resolve_policy, and so checks what the
host's resolver returns."""

from __future__ import annotations

from typing import Any, cast

import pytest

from mentorpay import CommissionPolicy, MentorpayConfig
from mentorpay.commission import CommissionResolver


def _config(resolver: Any) -> MentorpayConfig:
    return MentorpayConfig(
        webhook_secrets=["w"], commission_resolver=cast(CommissionResolver, resolver)
    )


def test_a_resolver_returning_a_bare_rate_is_refused() -> None:
    """A resolver returning 0.05 instead of a CommissionPolicy is a TypeError, never a policy."""
    config = _config(lambda mentor_id: 0.05)
    with pytest.raises(TypeError, match="CommissionPolicy or None"):
        config.policy_for("vip")


def test_a_resolver_returning_none_or_a_policy_still_works() -> None:
    """None falls back to the default; a CommissionPolicy is used as is."""
    special = CommissionPolicy(rate_bps=500)
    config = _config(lambda mentor_id: special if mentor_id == "vip" else None)
    assert config.policy_for("vip") is special
    assert config.policy_for("anyone") is config.commission
