"""Tables of presence-aware outreach, in the delivery ledger's database (they are read in the same
transactions as ``prompt_deliveries``): who is in a call on which node, and the phone attempts per prompt.
Migrations under the store name ``phone_outreach``."""

from __future__ import annotations

import sqlalchemy as sa

from server.storage.migrations import Migration, create_tables

metadata = sa.MetaData()
user_presence = sa.Table(
    "user_presence",
    metadata,
    sa.Column("call_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False, index=True),
    sa.Column("node_id", sa.String(200), nullable=False, index=True),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("seen_at", sa.Double, nullable=False),  # refreshed by the node's heartbeat
)
phone_attempts = sa.Table(
    "phone_attempts",
    metadata,
    sa.Column("idempotency_key", sa.String(300), primary_key=True),  # one row per prompt ever dialled
    sa.Column("user_id", sa.String(200), nullable=False, index=True),
    sa.Column("target", sa.String(300), nullable=False),  # the number or sip: URI dialled
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_outcome", sa.String(16)),  # answered, busy, no_answer, rejected, unreachable, failed
    sa.Column("last_attempt_at", sa.Double),
    sa.Column("next_attempt_at", sa.Double),  # while the prompt's status is "retry"
    sa.Column("response", sa.String(32)),  # the key pressed after a prompt that expects one
    sa.Column("created_at", sa.Double, nullable=False),
)
MIGRATIONS = (Migration(1, "user_presence and phone_attempts", create_tables(user_presence, phone_attempts)),)
