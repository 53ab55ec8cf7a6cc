"""Why each agent reply was said (``RecordedTurn.grounding``), in a table of its own beside ``call_records``.

One row per (call, turn) that has an account: how the reply was produced and from which document sentences.
It is kept out of the call's JSON body so the body keeps the shape older nodes wrote and read, and so the
accounts, which are larger than the transcript, are read only when one call is opened (the call list never
touches them). Written in the same transaction as the call's row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from server.calls.record import CallRecord
from server.storage.engine import insert

metadata = sa.MetaData()
turn_grounding = sa.Table(
    "call_turn_grounding",
    metadata,
    sa.Column("call_id", sa.String(64), primary_key=True),
    sa.Column("turn_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("grounding", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
)


def body_without_grounding(record: CallRecord) -> dict[str, Any]:
    """The call's JSON body as stored in ``call_records``: every turn without its grounding."""
    body = record.to_dict()
    for turn in body.get("turns", []):
        turn.pop("grounding", None)
    return body


def _rows(record: CallRecord) -> Iterator[dict[str, Any]]:
    for turn in record.turns:
        if turn.grounding is not None:
            yield {"call_id": record.call_id, "turn_index": turn.index, "grounding": turn.grounding}


def save_grounding(conn: sa.Connection, record: CallRecord) -> None:
    """Upsert the accounts of ``record``'s turns (a record is saved when the call starts and when it ends)."""
    rows = list(_rows(record))
    if not rows:
        return
    statement = insert(conn, turn_grounding).values(rows)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["call_id", "turn_index"], set_={"grounding": statement.excluded.grounding}
        )
    )


def attach_grounding(conn: sa.Connection, call_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a stored call body) with each turn's grounding put back; turns without one get None."""
    rows = conn.execute(
        sa.select(turn_grounding.c.turn_index, turn_grounding.c.grounding).where(
            turn_grounding.c.call_id == call_id
        )
    ).all()
    by_turn = {index: grounding for index, grounding in rows}
    for turn in body.get("turns", []):
        turn["grounding"] = by_turn.get(turn.get("index"))
    return body
