"""The delivery ledger's tables and their migrations (``server.storage.delivery_ledger`` uses them)."""

from __future__ import annotations

import sqlalchemy as sa

from server.storage.migrations import Migration, copy_legacy_rows, create_index, create_tables

metadata = sa.MetaData()
deliveries = sa.Table(
    "prompt_deliveries",
    metadata,
    sa.Column("idempotency_key", sa.String(300), primary_key=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("campaign_id", sa.String(64)),
    sa.Column("source", sa.String(16)),  # campaign | intent | callback | admin; NULL: published elsewhere
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("node_id", sa.String(200)),
    sa.Column("prompt", sa.Text, nullable=False),  # the ProactivePrompt as JSON
    sa.Column("waiting", sa.JSON(none_as_null=True)),  # scheduler: what to publish later, while it waits
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("run_at", sa.Double),  # scheduler: when it is (or was) due to be published
    sa.Column("expires_at", sa.Double),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("delivered_at", sa.Double),
    sa.Column("detail", sa.String(500)),
)
sa.Index("prompt_deliveries_user", deliveries.c.user_id, deliveries.c.status)
sa.Index("prompt_deliveries_campaign", deliveries.c.campaign_id)
sa.Index("prompt_deliveries_updated", deliveries.c.updated_at.desc())
# Every node's abandoned-claim sweep (server.proactive.abandoned_claims) looks for old ``claimed`` rows.
_STATUS_INDEX = sa.Index("prompt_deliveries_status", deliveries.c.status, deliveries.c.updated_at)
delivery_events = sa.Table(
    "prompt_delivery_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # orders events of one instant
    sa.Column("idempotency_key", sa.String(300), nullable=False, index=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("node_id", sa.String(200)),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("detail", sa.String(500)),
)
_LEGACY_COLUMNS = [
    "idempotency_key",
    "message_id",
    "user_id",
    "tenant",
    "campaign_id",
    "status",
    "node_id",
    "prompt",
    "priority",
    "expires_at",
    "created_at",
    "updated_at",
    "delivered_at",
    "detail",
]
MIGRATIONS = (
    Migration(1, "prompt_deliveries and prompt_delivery_events", create_tables(deliveries, delivery_events)),
    # Round 1 kept the nodes' side in proactive_deliveries (the scheduler's side in its own database).
    Migration(
        2,
        "copy round-1 proactive_deliveries",
        copy_legacy_rows("proactive_deliveries", deliveries, _LEGACY_COLUMNS),
    ),
    Migration(
        3,
        "copy round-1 proactive_delivery_events",
        copy_legacy_rows(
            "proactive_delivery_events",
            delivery_events,
            ["idempotency_key", "message_id", "status", "node_id", "at", "detail"],
        ),
    ),
    Migration(4, "prompt_deliveries status index", create_index(_STATUS_INDEX)),
)
