"""The webhooks package's seams: one handler registry, one effect bus wired into every writer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay import MentorpayConfig
from mentorpay.app import MentorPay
from mentorpay.effects import Effect, EffectBus
from mentorpay.errors import ConfigurationError
from mentorpay.events import EventEnvelope, HandlerResult
from mentorpay.ledger import LedgerService
from mentorpay.testing import FakeGateway, InMemoryBookings
from mentorpay.webhooks import HANDLED_EVENT_TYPES, WebhookProcessor
from mentorpay.webhooks._registry import HandlerRegistry
from mentorpay.webhooks.handlers.refunds import REFUND_EVENT_TYPES

SECRET = "whsec_layout"


def _noop(conn: Any, env: EventEnvelope) -> HandlerResult:
    return HandlerResult("ignored")


def _app(engine: Engine) -> MentorPay:
    config = MentorpayConfig(webhook_secrets=[SECRET])
    return MentorPay(config, engine, bookings=InMemoryBookings([]), gateway=FakeGateway())


def test_every_handled_type_has_a_builtin_handler(engine: Engine) -> None:
    """The built-in families register exactly HANDLED_EVENT_TYPES, through the one registry."""
    config = MentorpayConfig(webhook_secrets=[SECRET])
    processor = WebhookProcessor(config, engine, LedgerService(engine))
    for event_type in HANDLED_EVENT_TYPES:
        with pytest.raises(ConfigurationError, match="already has a handler"):
            processor.register(event_type, _noop)
    for event_type in REFUND_EVENT_TYPES:  # wired by MentorPay, not built into the processor
        processor.register(event_type, _noop)


def test_the_app_registers_refund_and_transfer_families_once(engine: Engine) -> None:
    """MentorPay registers the refund and payout families through WebhookProcessor.register."""
    mp = _app(engine)
    families = [*REFUND_EVENT_TYPES, *mp.payouts.webhook_handlers()]
    for event_type in families:
        with pytest.raises(ConfigurationError, match="already has a handler"):
            mp.webhooks.register(event_type, _noop)


def test_registry_refuses_unusable_event_types() -> None:
    """An empty or over-long event type is refused; replace=True overrides a handler."""
    registry = HandlerRegistry()
    for bad in ("", "x" * 129):
        with pytest.raises(ConfigurationError, match="not an event type"):
            registry.register(bad, _noop)
    registry.register("a.b", _noop)
    registry.register("a.b", _noop, replace=True)
    assert "a.b" in registry and registry.get("a.b") is _noop


def test_one_effect_bus_reaches_every_callback(engine: Engine) -> None:
    """mp.on, mp.webhooks.on and mp.effects.on share one bus and one outbox."""
    mp = _app(engine)
    assert isinstance(mp.effects, EffectBus)
    assert mp.outbox is mp.effects.outbox is mp.webhooks.outbox
    seen: list[str] = []
    mp.on("alert", lambda e: seen.append("app"))
    mp.webhooks.on("alert", lambda e: seen.append("processor"))
    mp.effects.on("alert", lambda e: seen.append("bus"))
    mp.webhooks.emit([Effect("alert", {})])
    assert seen == ["app", "processor", "bus"]


def test_the_bus_refuses_unknown_effect_kinds(engine: Engine) -> None:
    """An effect kind outside EffectKind is a configuration error, on the bus as before."""
    with pytest.raises(ConfigurationError, match="unknown effect kind"):
        _app(engine).effects.on("no_such_kind", print)  # type: ignore[arg-type]
