"""What a call may read is its tenant's and its user's only: the conversation the node builds for a call gets
the tenant's memory (none for an anonymous caller), retrieval over the tenant's documents whatever filters it
asks for, and call-backs booked for the tenant's user. A session without a verified user is anonymous."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from server.calls.identity import CallIdentity
from server.calls.session import CallSession
from server.node import conversation_factory
from server.proactive.held_prompts import HeldPromptGreeting
from server.settings import Settings
from tests.agent.fakes import FakeLLM
from tests.server.fakes import fake_deps


class RecordingRetriever:
    def __init__(self) -> None:
        self.filters: list[Any] = []

    async def retrieve(self, query: str, k: int = 3, filters: Any = None) -> list[Any]:
        self.filters.append(filters)
        return []


class RecordingScheduler:
    def __init__(self) -> None:
        self.booked: list[tuple[str, str]] = []

    async def schedule_callback(self, user_id: str, when: Any, reason: str, tenant: str = "default") -> str:
        self.booked.append((user_id, tenant))
        return "cb-1"


class Control:
    def __init__(self, identity: CallIdentity) -> None:
        self.tenant, self.anonymous, self.call_id = identity.tenant, identity.anonymous, "call-1"

    async def end_call(self) -> None: ...

    async def transfer(self, target: str) -> None: ...


async def test_a_conversation_reads_its_tenant_only(tmp_path: Path) -> None:
    settings = Settings()
    settings.agent.memory_path = str(tmp_path / "memory.sqlite3")
    retriever, scheduler = RecordingRetriever(), RecordingScheduler()
    make = conversation_factory(settings, FakeLLM(["ok"]), retriever, scheduler)
    seed = make("ann", Control(CallIdentity("ann", "acme")))
    seed.memory.add_fact("ann", "The user's account is A-1.")

    globex = make("ann", Control(CallIdentity("ann", "globex")))
    await globex.recall()  # memory is read off the event loop when the call starts
    assert globex.memory.tenant == "globex" and globex._remembered.facts == []
    acme = make("ann", Control(CallIdentity("ann", "acme")))
    await acme.recall()
    assert acme._remembered.facts == ["The user's account is A-1."]
    await acme.retriever.retrieve("opening hours", filters={"tenant": "globex"})
    assert retriever.filters == [{"tenant": "acme"}]
    await acme.tools.scheduler.schedule_callback("ann", datetime(2030, 1, 1), "billing")
    assert scheduler.booked == [("ann", "acme")]

    anonymous = make("anon-1234", Control(CallIdentity("anon-1234", anonymous=True)))
    assert anonymous.memory is None and anonymous._remembered is None


async def test_a_session_without_a_verified_user_is_anonymous_and_gets_no_held_prompts(
    tmp_path: Path,
) -> None:
    deps = fake_deps(tmp_path)
    first, second = (CallSession(deps, None, output_rate=48_000) for _ in range(2))
    assert first.anonymous and first.user_id.startswith("anon-") and first.user_id != second.user_id
    assert CallSession(deps, "dora", output_rate=48_000).identity == CallIdentity("dora")
    acme = CallSession(deps, output_rate=48_000, identity=CallIdentity("dora", "acme"))
    assert (acme.user_id, acme.tenant, acme.record.tenant) == ("dora", "acme", "acme")

    class Consumer:
        def __init__(self) -> None:
            self.popped: list[tuple[str, str]] = []
            self.delivery = None  # nothing is held, so nothing is spoken

        async def pop_pending(self, user_id: str, tenant: str = "default") -> list[Any]:
            self.popped.append((user_id, tenant))
            return []

    consumer = Consumer()
    greeting = HeldPromptGreeting(consumer, None, "node")  # type: ignore[arg-type]
    for session in (first, acme):
        await greeting(session)
    assert consumer.popped == [("dora", "acme")]
    deps.records.close()
