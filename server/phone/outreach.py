"""``PhoneOutreach``: the middle branch of the outreach policy, ring the phone of a user who is in no call.

The policy, for one proactive prompt (design: server/proactive/README.md, "Presence-aware outreach"):
1. the user is in a live call on some node -> that node speaks it there (the bus consumer's path);
2. else, if the directory has a phone for the user and the policy allows (quiet hours in the user's time
   zone, the gap since the user was last rung) -> exactly one node claims it in the delivery ledger and
   dials; answered -> the prompt is said, then the conversation goes on as in any call;
   busy / no answer / unreachable -> another attempt later (``retry``: any node's ``RetrySweeper`` takes
   it when due), up to ``max_attempts``; a refusal (603/403) is not retried;
3. else, or when the attempts ran out -> held for the user's next call (or expired / dead-lettered, per
   ``phone.outreach.on_exhausted``).
A call answered by silence (voicemail, nobody there) hears the prompt, then the bridge's polite goodbye.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from messaging.schemas import ProactivePrompt
from server.calls.identity import CallIdentity
from server.phone.config import OutreachPolicyConfig
from server.phone.directory import DirectoryEntry, PhoneDirectory
from server.phone.policy import DialPolicy
from server.proactive.delivery import PromptDelivery
from server.storage.outreach_ledger import DueDial, SqlOutreachLedger
from server.transports.sip import DialError, DialOutcome, SipCall, SipError
from server.transports.sip.bridge import SipCallBridge

log = logging.getLogger(__name__)

_CALL_NOW_TTL_S = 3600
# A callee usually answers with "Hello?": the prompt waits for it (and the pause after it), at most this long.
_CALLEE_HELLO_S = 2.0


class OutreachRefused(Exception):
    """``call_now`` cannot ring this user now; the message says why (no number, in a call...)."""


class Dialer(Protocol):
    """What the outreach needs of ``server.transports.sip.SipUserAgent``."""

    async def dial(self, target: str, *, ring_timeout_s: float | None = None) -> SipCall: ...


BridgeFactory = Callable[[SipCall, CallIdentity, dict[str, Any]], SipCallBridge]  # (call, callee, info)
DeadLetter = Callable[[ProactivePrompt, str], Awaitable[None]]


@dataclass(frozen=True)
class Presence:
    """How fresh a presence row must be to count (heartbeat x 3) and the clock."""

    window_s: float
    clock: Callable[[], float] = time.time

    def fresh_after(self) -> float:
        return self.clock() - self.window_s


class PhoneOutreach:
    def __init__(
        self,
        *,
        node_id: str,
        config: OutreachPolicyConfig,
        dialer: Dialer,
        directory: PhoneDirectory,
        store: SqlOutreachLedger,
        delivery: PromptDelivery,
        bridge: BridgeFactory,
        presence: Presence,
        greeting: str,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        self.node_id = node_id
        self.config = config
        self.policy = DialPolicy(config)
        self.dialer = dialer
        self.directory = directory
        self.store = store
        self.delivery = delivery
        self.bridge = bridge
        self.presence = presence
        self.greeting = greeting
        self.dead_letter = dead_letter
        self.clock = presence.clock
        self._calls: set[asyncio.Task[None]] = set()

    # -- entry points ---------------------------------------------------------------------------------
    async def offer(self, prompt: ProactivePrompt) -> bool:
        """The bus consumer found the user in no call on this node. True when this node took the prompt
        (dialling now, or the next attempt scheduled); False: nothing to dial, or another node has it."""
        if not self.config.enabled:
            return False
        entry = await self.directory.by_user(prompt.user_id, prompt.tenant)
        if entry is None:
            return False
        why = await self.store.claim_dial(
            prompt, self.node_id, entry.dial_target, self.presence.fresh_after()
        )
        if why is not None:
            log.info("not dialling %s for prompt %s: %s", prompt.user_id, prompt.idempotency_key, why)
            return False
        now = self.clock()
        first = self.policy.first_attempt_at(
            now, entry.zone, await self.store.last_attempt_at(prompt.user_id)
        )
        if first > now + 1.0:
            await self._later(prompt, first, "quiet hours or the gap since the last call")
        else:
            self._spawn(self._attempt(prompt, entry))
        return True

    async def call_now(
        self,
        user_id: str,
        text: str | None = None,
        expect_digits: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Ring ``user_id`` now (admin "call this user now"): no quiet hours, no gap; still never while the
        user is in a call on any node. ``OutreachRefused`` says why not."""
        entry = await self.directory.by_user(user_id, tenant)
        if entry is None:
            raise OutreachRefused(f"no phone number for user {user_id!r} in the directory")
        now = self.clock()
        prompt = ProactivePrompt(
            idempotency_key=f"call-now:{uuid.uuid4().hex}",
            user_id=user_id,
            tenant=entry.tenant,
            text=text or self.greeting,
            priority=1,
            created_at=now,
            expires_at=now + _CALL_NOW_TTL_S,
            expect_digits=expect_digits,
        )
        why = await self.store.claim_dial(
            prompt, self.node_id, entry.dial_target, self.presence.fresh_after()
        )
        if why is not None:
            raise OutreachRefused(f"not calling {user_id}: {why}")
        self._spawn(self._attempt(prompt, entry))
        return {
            "idempotency_key": prompt.idempotency_key,
            "user_id": user_id,
            "target": entry.dial_target,
            "status": "dialing",
        }

    async def redial(self, due: DueDial) -> None:
        """A retry this node claimed (``RetrySweeper``): ring again if the user still has a number."""
        entry = await self.directory.by_user(due.prompt.user_id, due.prompt.tenant)
        if entry is None:
            await self._give_up(due.prompt, "the user's phone number was removed from the directory")
            return
        self._spawn(self._attempt(due.prompt, entry))

    async def stop(self) -> None:
        for task in list(self._calls):
            task.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)

    # -- one attempt ----------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="phone-outreach")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _attempt(self, prompt: ProactivePrompt, entry: DirectoryEntry) -> None:
        try:
            attempt = await self.store.attempt_started(prompt, self.node_id, entry.dial_target)
            started = time.monotonic()
            try:
                call = await self.dialer.dial(entry.dial_target, ring_timeout_s=self.config.ring_timeout_s)
            except DialError as exc:
                await self.store.attempt_ended(prompt, self.node_id, exc.outcome.value, str(exc))
                await self._unanswered(prompt, entry, attempt, exc.outcome, str(exc))
                return
            except (SipError, OSError) as exc:
                await self.store.attempt_ended(prompt, self.node_id, DialOutcome.FAILED.value, str(exc))
                await self._unanswered(prompt, entry, attempt, DialOutcome.FAILED, str(exc))
                return
            ring_s = time.monotonic() - started
            await self.store.attempt_ended(
                prompt, self.node_id, "answered", f"attempt {attempt} answered after {ring_s:.1f} s"
            )
            await self._converse(call, prompt, entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("phone outreach for prompt %s failed", prompt.idempotency_key)

    async def _converse(self, call: SipCall, prompt: ProactivePrompt, entry: DirectoryEntry) -> None:
        """The callee answered: the prompt first (no greeting), then the conversation, until a hang-up."""
        info = {"callee_number": entry.number, "tenant": entry.tenant, "prompt": prompt.idempotency_key}
        bridge = self.bridge(call, CallIdentity(prompt.user_id, entry.tenant), info)
        session = bridge.start()
        try:
            await _callee_spoke_or(session, _CALLEE_HELLO_S)
            spoken = await self.delivery.speak(session, prompt)
            log.info(
                "outbound call %s for prompt %s: prompt %s",
                session.call_id,
                prompt.idempotency_key,
                "spoken" if spoken else "not spoken (held for the next call)",
            )
            await bridge.run()
        finally:
            if not session.ended.is_set():
                await session.close("server_stop")

    async def _unanswered(
        self, prompt: ProactivePrompt, entry: DirectoryEntry, attempt: int, outcome: DialOutcome, detail: str
    ) -> None:
        when = self.policy.retry_at(self.clock(), entry.zone, attempt, outcome)
        if when is None:
            why = "refused" if outcome is DialOutcome.REJECTED else f"{attempt} attempt(s)"
            await self._give_up(prompt, f"{why}; last: {outcome.value} ({detail})")
            return
        await self._later(prompt, when, f"attempt {attempt}: {outcome.value}")

    async def _later(self, prompt: ProactivePrompt, when: float, why: str) -> None:
        if prompt.expires_at is not None and when >= prompt.expires_at:
            await self._give_up(prompt, f"{why}; the next attempt ({_iso(when)}) would be after it expires")
            return
        await self.store.schedule_retry(prompt, self.node_id, when, f"{why}; next attempt at {_iso(when)}")

    async def _give_up(self, prompt: ProactivePrompt, detail: str) -> None:
        how = self.config.on_exhausted
        if prompt.expired(self.clock()) or how == "expire":
            await self.store.give_up(prompt, self.node_id, "expired", detail)
        elif how == "dead_letter" and self.dead_letter is not None:
            await self.dead_letter(prompt, detail)
            await self.store.give_up(prompt, self.node_id, "dead_lettered", detail)
        else:
            await self.store.give_up(prompt, self.node_id, "pending", f"held for the next call: {detail}")
        log.info("phone outreach for prompt %s gave up (%s): %s", prompt.idempotency_key, how, detail)


async def _callee_spoke_or(session: Any, timeout_s: float) -> None:
    """Until the callee starts speaking (a transcript appears) or ``timeout_s`` passed."""
    events = session.events.subscribe()
    try:
        async with asyncio.timeout(timeout_s):
            while (event := await events.get()) is not None:
                if event["type"] in ("partial_transcript", "final_transcript"):
                    return
    except TimeoutError:
        pass
    finally:
        session.events.unsubscribe(events)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
