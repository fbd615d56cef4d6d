"""The effect bus: business effects for the host, stored with the change and delivered after commit.

Every writer (the webhook processor, the payout service, the review service) reports what it
committed as :class:`Effect` values. The bus is the one place they go: ``stage`` stores them in
the writer's transaction (the outbox, :mod:`mentorpay.outbox`), ``emit`` runs the host's
callbacks after commit and marks them delivered. ``on`` registers a callback per
:data:`EffectKind`. One bus per process (``mp.effects``), wired by :class:`mentorpay.MentorPay`
into every writer, so an effect reaches the same callbacks whichever service committed it.

``Effect``, ``EffectKind`` and ``EFFECT_KINDS`` are defined in :mod:`mentorpay.events` (beside
the handler types, which the outbox also needs) and re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Connection

from mentorpay.events import EFFECT_KINDS, Effect, EffectKind
from mentorpay.outbox import Outbox

__all__ = ["EFFECT_KINDS", "Effect", "EffectBus", "EffectKind"]

Callback = Callable[[Effect], None]


class EffectBus:
    """Callbacks by effect kind over one :class:`~mentorpay.outbox.Outbox`.

    ``on`` is for start-up, before deliveries arrive. ``stage`` runs inside the writer's
    transaction; ``emit`` only after it committed (it never raises: a failed callback leaves
    its stored row pending for ``outbox.deliver_pending``).
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        # Bound once: both run on every event of the webhook hot path.
        self.stage: Callable[[Connection, Sequence[Effect]], None] = outbox.stage
        self.emit: Callable[[Sequence[Effect]], None] = outbox.deliver

    def on(self, effect_kind: EffectKind, callback: Callback) -> None:
        """Call ``callback(effect)`` after commit, at least once per committed effect of that kind.

        An unknown kind raises :class:`~mentorpay.errors.ConfigurationError`.
        """
        self.outbox.on(effect_kind, callback)
