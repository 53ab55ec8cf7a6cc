"""The phone side of the delivery ledger: dial claims, attempts, retries and answers by key.

A prompt for a user in no call may ring the user's phone. Exactly one node dials: ``claim_dial`` moves the
prompt's row (``prompt_deliveries``) to ``dialing`` in one transaction that also checks that
- no node holds a fresh live call of the user (``user_presence``: the node holding the call speaks it
  there instead), and
- the prompt was never dialled before (``phone_attempts``: a prompt held after its attempts ran out is
  spoken at the next call, not rung again).
Busy / no answer puts the row to ``retry`` with ``next_attempt_at``; every node's sweeper claims due
retries the same way (``claim_retry``: one conditional UPDATE wins). The statuses this adds to the
ledger's: ``dialing``, ``retry``, ``dead_lettered``; every attempt and outcome is an event in
``prompt_delivery_events`` (``dial_claimed``, ``dialing`` (an INVITE went out), ``answered``, ``busy``, ``no_answer``, ``rejected``,
``unreachable``, ``failed``, ``retry``, ``response``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from messaging.schemas import ProactivePrompt
from server.storage.delivery_ledger import HOLDABLE, SqlDeliveryLedger
from server.storage.delivery_schema import deliveries
from server.storage.migrations import migrate
from server.storage.outreach_schema import MIGRATIONS, phone_attempts
from server.storage.presence import present_node

DIALABLE = (*HOLDABLE, "pending")  # statuses a first dial may start from (never dialled before)
GIVE_UP_STATES = ("pending", "expired", "dead_lettered")


@dataclass(frozen=True)
class DueDial:
    """A prompt whose next attempt is due (``retry``), or whose dialling node went silent."""

    prompt: ProactivePrompt
    status: str
    target: str
    attempts: int


class SqlOutreachLedger:
    """Coroutines on the delivery ledger's engine (``ledger``), one transaction each."""

    def __init__(self, ledger: SqlDeliveryLedger) -> None:
        self.ledger = ledger
        self.engine = ledger.engine
        migrate(self.engine, "phone_outreach", MIGRATIONS)

    def _now(self) -> float:
        return self.ledger.clock()

    # --- claims ----------------------------------------------------------------------------------
    async def claim_dial(
        self, prompt: ProactivePrompt, node_id: str, target: str, fresh_after: float
    ) -> str | None:
        """Become the one node that dials ``prompt`` to ``target``. None when claimed; else why not
        ("in a call on node-b", "already dialled", "already delivered"...)."""
        key = prompt.idempotency_key
        led = self.ledger

        def tx(conn: sa.Connection) -> str | None:
            if (node := present_node(conn, prompt.user_id, fresh_after)) is not None:
                return f"in a call on {node}"
            if conn.execute(
                sa.select(phone_attempts.c.attempts).where(phone_attempts.c.idempotency_key == key)
            ).first():
                return "already dialled"
            now = self._now()
            taken = led._insert(conn, led._row(prompt, "dialing", node_id, f"calling {target}"))
            if not taken:
                taken = bool(
                    conn.execute(
                        deliveries.update()
                        .where(deliveries.c.idempotency_key == key, deliveries.c.status.in_(DIALABLE))
                        .values(status="dialing", node_id=node_id, updated_at=now, detail=f"calling {target}")
                    ).rowcount
                )
            if not taken:
                return f"already {led._status(conn, key) or 'unknown'}"
            conn.execute(
                phone_attempts.insert().values(
                    idempotency_key=key, user_id=prompt.user_id, target=target, attempts=0, created_at=now
                )
            )
            led._event(conn, key, prompt.message_id, "dial_claimed", node_id, f"to call {target}")
            return None

        return await led._run(tx)

    async def claim_retry(
        self, due: DueDial, node_id: str, status: str, stale_before: float, fresh_after: float | None
    ) -> bool:
        """Take a due prompt: ``dialing`` (ring again; refused while a node holds a live call of the user:
        ``fresh_after``) or ``claimed`` (speak it in the user's live call on this node)."""
        led = self.ledger
        key = due.prompt.idempotency_key

        def tx(conn: sa.Connection) -> bool:
            if fresh_after is not None and present_node(conn, due.prompt.user_id, fresh_after) is not None:
                return False
            due_now = sa.or_(
                deliveries.c.status == "retry",
                sa.and_(deliveries.c.status == "dialing", deliveries.c.updated_at < stale_before),
            )
            taken = conn.execute(
                deliveries.update()
                .where(deliveries.c.idempotency_key == key, due_now)
                .values(status=status, node_id=node_id, updated_at=self._now(), detail=None)
            ).rowcount
            if taken:
                detail = "retry due" if due.status == "retry" else "took over from a silent node"
                event = "dial_claimed" if status == "dialing" else status
                led._event(conn, key, due.prompt.message_id, event, node_id, detail)
            return bool(taken)

        return await led._run(tx)

    async def due(self, now: float, stale_before: float, limit: int = 20) -> list[DueDial]:
        """Prompts whose next attempt is due, or whose dialling node went silent (oldest first)."""

        def q(conn: sa.Connection) -> list[DueDial]:
            rows = conn.execute(
                sa.select(
                    deliveries.c.prompt,
                    deliveries.c.status,
                    phone_attempts.c.target,
                    phone_attempts.c.attempts,
                )
                .join(phone_attempts, phone_attempts.c.idempotency_key == deliveries.c.idempotency_key)
                .where(
                    sa.or_(
                        sa.and_(deliveries.c.status == "retry", phone_attempts.c.next_attempt_at <= now),
                        sa.and_(deliveries.c.status == "dialing", deliveries.c.updated_at < stale_before),
                    )
                )
                .order_by(phone_attempts.c.next_attempt_at)
                .limit(limit)
            ).all()
            return [DueDial(ProactivePrompt.model_validate_json(r[0]), r[1], r[2], int(r[3])) for r in rows]

        return await self.ledger._run(q)

    # --- attempts --------------------------------------------------------------------------------
    async def last_attempt_at(self, user_id: str) -> float | None:
        """When this user's phone was last rung (any prompt), for the minimum gap between attempts."""

        def q(conn: sa.Connection) -> float | None:
            value = conn.execute(
                sa.select(sa.func.max(phone_attempts.c.last_attempt_at)).where(
                    phone_attempts.c.user_id == user_id
                )
            ).scalar()
            return None if value is None else float(value)

        return await self.ledger._run(q)

    async def attempt_started(self, prompt: ProactivePrompt, node_id: str, target: str) -> int:
        """Count one more attempt (the INVITE goes out now); returns its number (1 for the first)."""
        key = prompt.idempotency_key

        def tx(conn: sa.Connection) -> int:
            now = self._now()
            conn.execute(
                phone_attempts.update()
                .where(phone_attempts.c.idempotency_key == key)
                .values(attempts=phone_attempts.c.attempts + 1, last_attempt_at=now, next_attempt_at=None)
            )
            attempt = int(
                conn.execute(
                    sa.select(phone_attempts.c.attempts).where(phone_attempts.c.idempotency_key == key)
                ).scalar()
                or 1
            )
            self._status(conn, key, "dialing", node_id, f"attempt {attempt}: calling {target}")
            self.ledger._event(
                conn, key, prompt.message_id, "dialing", node_id, f"attempt {attempt}: calling {target}"
            )
            return attempt

        return await self.ledger._run(tx)

    async def attempt_ended(self, prompt: ProactivePrompt, node_id: str, outcome: str, detail: str) -> None:
        """How the attempt ended: ``answered`` or a ``DialOutcome`` value (busy, no_answer...)."""
        key = prompt.idempotency_key

        def tx(conn: sa.Connection) -> None:
            conn.execute(
                phone_attempts.update()
                .where(phone_attempts.c.idempotency_key == key)
                .values(last_outcome=outcome)
            )
            self.ledger._event(conn, key, prompt.message_id, outcome, node_id, detail)

        await self.ledger._run(tx)

    async def schedule_retry(self, prompt: ProactivePrompt, node_id: str, at: float, detail: str) -> None:
        key = prompt.idempotency_key

        def tx(conn: sa.Connection) -> None:
            conn.execute(
                phone_attempts.update()
                .where(phone_attempts.c.idempotency_key == key)
                .values(next_attempt_at=at)
            )
            self._status(conn, key, "retry", node_id, detail, only_from=("dialing",))
            self.ledger._event(conn, key, prompt.message_id, "retry", node_id, detail)

        await self.ledger._run(tx)

    async def give_up(self, prompt: ProactivePrompt, node_id: str, status: str, detail: str) -> None:
        """No more attempts: ``pending`` (held for the user's next call), ``expired`` or ``dead_lettered``."""
        if status not in GIVE_UP_STATES:
            raise ValueError(f"give_up to {status!r}: use one of {GIVE_UP_STATES}")
        key = prompt.idempotency_key

        def tx(conn: sa.Connection) -> None:
            self._status(conn, key, status, node_id, detail, only_from=("dialing", "retry"))
            self.ledger._event(conn, key, prompt.message_id, status, node_id, detail)

        await self.ledger._run(tx)

    async def expire_due(self, now: float, node_id: str) -> int:
        """Prompts waiting for a retry whose expiry passed: ``expired``. Returns how many."""

        def tx(conn: sa.Connection) -> int:
            rows = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.status == "retry",
                    deliveries.c.expires_at.is_not(None),
                    deliveries.c.expires_at <= now,
                )
                .values(
                    status="expired",
                    node_id=node_id,
                    updated_at=now,
                    detail="expired before the next attempt",
                )
                .returning(deliveries.c.idempotency_key, deliveries.c.message_id)
            ).all()
            for key, message_id in rows:
                self.ledger._event(
                    conn, key, message_id, "expired", node_id, "expired before the next attempt"
                )
            return len(rows)

        return await self.ledger._run(tx)

    async def record_response(self, prompt: ProactivePrompt, node_id: str, key: str | None) -> None:
        """The key the caller pressed after a prompt that expects one (None: no key in time)."""
        expected = prompt.expect_digits or ""
        if key is None:
            detail = "no key pressed"
        elif key in expected:
            detail = f"pressed {key}"
        else:
            detail = f"pressed {key} (expected one of {expected})"

        def tx(conn: sa.Connection) -> None:
            idem = prompt.idempotency_key
            conn.execute(
                phone_attempts.update()
                .where(phone_attempts.c.idempotency_key == idem)
                .values(response=key or "none")
            )
            conn.execute(
                deliveries.update()
                .where(deliveries.c.idempotency_key == idem)
                .values(detail=detail, updated_at=self._now())
            )
            self.ledger._event(conn, idem, prompt.message_id, "response", node_id, detail)

        await self.ledger._run(tx)

    async def recent(self, limit: int = 50, tenant: str | None = None) -> list[dict[str, Any]]:
        """The latest dialled prompts with their status, attempts and outcomes (dashboard); ``tenant`` None:
        every tenant."""
        columns = (
            deliveries.c.idempotency_key,
            deliveries.c.user_id,
            deliveries.c.tenant,
            deliveries.c.status,
            deliveries.c.node_id,
            deliveries.c.detail,
            deliveries.c.updated_at,
            phone_attempts.c.target,
            phone_attempts.c.attempts,
            phone_attempts.c.last_outcome,
            phone_attempts.c.last_attempt_at,
            phone_attempts.c.next_attempt_at,
            phone_attempts.c.response,
        )

        def q(conn: sa.Connection) -> list[dict[str, Any]]:
            query = sa.select(*columns).join(
                phone_attempts, phone_attempts.c.idempotency_key == deliveries.c.idempotency_key
            )
            if tenant is not None:
                query = query.where(deliveries.c.tenant == tenant)
            rows = conn.execute(query.order_by(deliveries.c.updated_at.desc()).limit(limit)).all()
            return [dict(r._mapping) for r in rows]

        return await self.ledger._run(q)

    def _status(
        self,
        conn: sa.Connection,
        key: str,
        status: str,
        node_id: str,
        detail: str,
        only_from: tuple[str, ...] | None = None,
    ) -> None:
        where = [deliveries.c.idempotency_key == key]
        if only_from is not None:
            where.append(deliveries.c.status.in_(only_from))
        conn.execute(
            deliveries.update()
            .where(*where)
            .values(status=status, node_id=node_id, updated_at=self._now(), detail=detail[:500])
        )
