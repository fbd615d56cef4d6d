"""No secret (Stripe key, webhook secrets, database password) appears in any representation of
the config, in configuration errors, in their tracebacks or in log records."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from mentorpay.config import MentorpayConfig
from mentorpay.db import make_engine
from mentorpay.errors import ConfigurationError, MentorpayError

STRIPE_KEY = "sk_live_SECRETKEY12345"
WEBHOOK_1 = "whsec_FIRSTSECRET111"
WEBHOOK_2 = "whsec_SECONDSECRET222"
DB_PASSWORD = "hunter2PASSWORD"
DATABASE_URL = f"postgresql+psycopg://mentorpay:{DB_PASSWORD}@db.internal:5432/mentorpay"
SECRETS = (STRIPE_KEY, WEBHOOK_1, WEBHOOK_2, DB_PASSWORD)


def assert_no_secret(text: str) -> None:
    """None of the secret values occurs in ``text``."""
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"leaked {leaked} in {text!r}"


def full_config() -> MentorpayConfig:
    """A config holding every kind of secret."""
    return MentorpayConfig(
        webhook_secrets=[WEBHOOK_1, WEBHOOK_2],
        stripe_secret_key=STRIPE_KEY,
        database_url=DATABASE_URL,
        stripe_api_base=f"https://proxy:{DB_PASSWORD}@egress.internal:8443",
    )


def test_every_representation_of_the_config_hides_secrets() -> None:
    """repr, str, format, model_dump (python and json) and model_dump_json show no secret."""
    config = full_config()
    shown = [
        repr(config),
        str(config),
        f"{config}",
        f"{config!r}",
        str(config.model_dump()),
        str(config.model_dump(mode="json")),
        config.model_dump_json(),
        repr(config.model_copy()),
    ]
    for text in shown:
        assert_no_secret(text)
    assert "db.internal" in repr(config)  # the host stays visible, only the password is masked
    assert "db.internal" in config.model_dump_json()


def test_the_public_attributes_still_hold_the_real_values() -> None:
    """Masking is for display only: the URL and secrets are usable as before."""
    config = full_config()
    assert config.database_url == DATABASE_URL
    assert config.stripe_secret_key is not None
    assert config.stripe_secret_key.get_secret_value() == STRIPE_KEY
    assert [s.get_secret_value() for s in config.webhook_secrets] == [WEBHOOK_1, WEBHOOK_2]


def test_a_password_in_the_query_string_is_masked_too() -> None:
    """libpq also takes ?password=...; that value is hidden as well."""
    url = f"postgresql+psycopg://db.internal/mentorpay?password={DB_PASSWORD}&sslmode=require"
    config = MentorpayConfig(webhook_secrets=[WEBHOOK_1], database_url=url)
    for text in (repr(config), config.model_dump_json(), str(config.model_dump())):
        assert_no_secret(text)
        assert "sslmode=require" in text


BAD_CONFIGS: list[Any] = [
    pytest.param(
        lambda: MentorpayConfig(webhook_secrets=[WEBHOOK_1], stripe_secret_kye=STRIPE_KEY),
        "stripe_secret_kye",
        id="mistyped-keyword",
    ),
    pytest.param(
        lambda: MentorpayConfig(webhook_secrets=[WEBHOOK_1, WEBHOOK_2, ""]),
        "webhook_secrets",
        id="empty-second-secret",
    ),
    pytest.param(
        lambda: MentorpayConfig(webhook_secrets=[WEBHOOK_1, 5]),
        "webhook_secrets",
        id="non-string-secret",
    ),
    pytest.param(
        lambda: MentorpayConfig(webhook_secrets=WEBHOOK_1, stripe_secret_key=[STRIPE_KEY]),
        "stripe_secret_key",
        id="key-of-wrong-type",
    ),
    pytest.param(
        lambda: MentorpayConfig(webhook_secrets=[WEBHOOK_1], database_url=[DATABASE_URL]),
        "database_url",
        id="url-of-wrong-type",
    ),
    pytest.param(
        lambda: MentorpayConfig(
            webhook_secrets=[WEBHOOK_1], stripe_api_base=f"ftp://u:{DB_PASSWORD}@h"
        ),
        "stripe_api_base",
        id="bad-api-base",
    ),
    pytest.param(
        lambda: MentorpayConfig.from_env(
            {"STRIPE_WEBHOOK_SECRET": WEBHOOK_1, "MENTORPAY_DATABASE_URL": DATABASE_URL},
            stripe_secret_key=STRIPE_KEY,
            webhook_tolerance=-1,
        ),
        "webhook_tolerance",
        id="from-env-other-field",
    ),
    pytest.param(
        lambda: make_engine(f"postgresql+psycopg://u:{DB_PASSWORD}@db.internal:notaport/x"),
        "database",
        id="unparseable-database-url",
    ),
]


@pytest.mark.parametrize(("build", "names"), BAD_CONFIGS)
def test_configuration_errors_never_repeat_a_secret(
    build: Callable[[], object], names: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Message, details, repr, traceback and log record name the field, never its value."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigurationError) as caught:
        build()
    error: MentorpayError = caught.value
    assert names in error.message
    logging.getLogger("host").exception("startup failed")
    for text in (
        error.message,
        str(error),
        repr(error),
        str(error.to_dict()),
        str(error.details),
        "".join(traceback.format_exception(error)),
        caplog.text,
    ):
        assert_no_secret(text)
