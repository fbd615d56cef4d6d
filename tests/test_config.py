"""MentorpayConfig: validation, secrets kept out of repr, opt-in environment reading."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mentorpay import CommissionPolicy, ConfigurationError, MentorpayConfig


def test_secrets_never_appear_in_repr_or_str() -> None:
    """Webhook secrets and the Stripe key are hidden when the config is printed."""
    config = MentorpayConfig(webhook_secrets=["whsec_abc123"], stripe_secret_key="sk_test_zzz")
    text = repr(config) + str(config)
    assert "whsec_abc123" not in text
    assert "sk_test_zzz" not in text
    assert config.webhook_secrets[0].get_secret_value() == "whsec_abc123"


def test_a_config_without_webhook_secret_cannot_be_built() -> None:
    """No secret means no config: mentorpay never accepts unsigned webhooks."""
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=[])
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=["  "])
    with pytest.raises(ConfigurationError):
        MentorpayConfig.from_env({})


def test_config_is_frozen_and_rejects_unknown_fields() -> None:
    """The config cannot be changed after construction and typos are errors."""
    config = MentorpayConfig(webhook_secrets=["whsec_x"])
    with pytest.raises(Exception, match="frozen"):
        config.webhook_tolerance = 5  # type: ignore[misc]
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=["whsec_x"], webhook_tolerence=5)  # type: ignore[call-arg]


def test_from_env_reads_rotation_secrets_rate_and_hold() -> None:
    """STRIPE_WEBHOOK_SECRET is comma-separated; rate and hold period come from the env."""
    config = MentorpayConfig.from_env(
        {
            "STRIPE_WEBHOOK_SECRET": "whsec_new, whsec_old",
            "STRIPE_SECRET_KEY": "sk_test_1",
            "MENTORPAY_COMMISSION_BPS": "1500",
            "MENTORPAY_HOLD_DAYS": "3",
            "MENTORPAY_DATABASE_URL": "sqlite:///x.db",
        }
    )
    assert [s.get_secret_value() for s in config.webhook_secrets] == ["whsec_new", "whsec_old"]
    assert config.commission == CommissionPolicy(rate_bps=1500)
    assert config.hold_period == timedelta(days=3)
    assert config.database_url == "sqlite:///x.db"


def test_from_env_rejects_a_non_integer_rate() -> None:
    """A malformed MENTORPAY_COMMISSION_BPS names the variable in the error."""
    with pytest.raises(ConfigurationError, match="MENTORPAY_COMMISSION_BPS"):
        MentorpayConfig.from_env({"STRIPE_WEBHOOK_SECRET": "w", "MENTORPAY_COMMISSION_BPS": "10%"})


def test_checkout_expiry_must_fit_stripes_window() -> None:
    """Stripe accepts a Checkout expiry between 30 minutes and 24 hours."""
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=["w"], checkout_expiry=timedelta(minutes=10))
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=["w"], checkout_expiry=timedelta(days=2))


def test_min_payout_currencies_are_normalized_and_checked() -> None:
    """min_payout keys are upper-cased currency codes; negative or float amounts are refused."""
    config = MentorpayConfig(webhook_secrets=["w"], min_payout={"gbp": 1000})
    assert config.min_payout == {"GBP": 1000}
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=["w"], min_payout={"GBP": -1})
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=["w"], min_payout={"GBP": 10.0})


def test_per_mentor_override_through_the_resolver() -> None:
    """policy_for returns the resolver's override, else the default policy."""
    special = CommissionPolicy(rate_bps=500)
    config = MentorpayConfig(
        webhook_secrets=["w"],
        commission_resolver=lambda mentor_id: special if mentor_id == "vip" else None,
    )
    assert config.policy_for("vip") is special
    assert config.policy_for("anyone") == CommissionPolicy(rate_bps=1000)
