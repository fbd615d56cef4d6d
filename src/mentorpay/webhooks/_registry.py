"""The one way to give an event type a handler: :meth:`HandlerRegistry.register`.

The built-in families (``handlers/``), the payout service's transfer handlers and the host's own
all go through it (``WebhookProcessor.register`` delegates here). A family exposes its handlers
as ``webhook_handlers() -> {event_type: handler}``; :meth:`HandlerRegistry.include` registers
each through ``register``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from mentorpay.errors import ConfigurationError
from mentorpay.events import Handler

__all__ = ["HandlerRegistry"]

_TYPE_MAX: Final = 128


class HandlerRegistry:
    """Event type -> handler. Filled at start-up, read on every event."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        #: The lookup the hot path uses (the dict's own ``get``: no extra call per event).
        self.get = self._handlers.get

    def register(self, event_type: str, handler: Handler, *, replace: bool = False) -> None:
        """Handle ``event_type`` with ``handler``; it runs in the event's transaction.

        Registering a type that already has a handler is refused unless ``replace=True``.
        """
        if not event_type or len(event_type) > _TYPE_MAX:
            raise ConfigurationError(f"not an event type: {event_type!r}")
        if event_type in self._handlers and not replace:
            raise ConfigurationError(
                f"{event_type} already has a handler; pass replace=True to override it"
            )
        self._handlers[event_type] = handler

    def include(self, handlers: Mapping[str, Handler]) -> None:
        """Register a family's ``webhook_handlers()``, each through :meth:`register`."""
        for event_type, handler in handlers.items():
            self.register(event_type, handler)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._handlers
