"""Alembic environment for mentorpay's own tables (run through mentorpay.migrations.upgrade)."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Engine

from mentorpay.migrations import VERSION_TABLE, lock_for_upgrade
from mentorpay.models import UTCDateTime, metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Revisions must not import mentorpay.models: they describe the schema as it was then.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run() -> None:
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("run mentorpay migrations through mentorpay.migrations.upgrade()")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            render_as_batch=connection.dialect.name == "sqlite",
            # One transaction for the whole upgrade on SQLite too (its DDL is transactional):
            # Alembic's per-migration commits there would let a second process slip in between.
            transactional_ddl=True,
            compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            # Before Alembic reads the current revision: concurrent upgrades wait here.
            lock_for_upgrade(connection)
            context.run_migrations()
        connection.commit()


_run()
