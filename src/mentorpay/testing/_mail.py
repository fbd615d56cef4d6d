"""OutboxMailer: a Mailer that keeps messages in memory, for tests and the demo."""

from __future__ import annotations

import threading

from mentorpay.notifications import EmailMessage

__all__ = ["OutboxMailer"]


class OutboxMailer:
    """Collects sent messages (thread-safe); ``messages`` lists them in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        """Keep the message instead of delivering it."""
        with self._lock:
            self.messages.append(message)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages sent to one address."""
        with self._lock:
            return [m for m in self.messages if m.to == address]
