"""One RTC server node, composed: what ``voice-agent serve`` runs.

    scheduler ──ProactivePrompt──> bus (voice_proactive) ──> ProactivePromptConsumer ──> SessionRegistry
        ^                                                         │ DeliveryLedger (SQLite or PG)
        └──ConversationEvent── calls <── speak_proactive ─────────┘
    bus (knowledge_changes) ──> KnowledgeBase.change_handler

On the embedded profile (``bus.backend: embedded``) the scheduler runs in this process; otherwise a
``SchedulerClient`` serves the admin API and the agent's call-backs, and a separate ``voice-agent scheduler``
process runs the jobs. HTTP is served only once every bus subscription is receiving, so ``/readyz``
answering 200 means prompts published from then on reach this node (a new RocketMQ consumer group starts
at the end of its topic). Everything is closed in reverse order of creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from messaging.bus import MessageBus, Subscription
from messaging.registry import create_bus
from server.app import build_deps, knowledge_routes, run_server, start_knowledge
from server.proactive import ProactivePromptConsumer
from server.proactive.ledger import DeliveryLedgerStore, open_delivery_ledger
from server.registry import SessionRegistry
from server.settings import Settings

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 90.0  # RocketMQ: route lookup and the first receive of each consumer group


class HeldPromptGreeting:
    """``on_call_connected`` hook: after the greeting, speak the prompts held while the caller was offline.

    ``pop_pending`` returns each held, unexpired prompt once (most urgent first). One that could not be
    spoken (no pause, cut off, call ended) goes back to ``pending`` for the user's next call."""

    def __init__(self, consumer: ProactivePromptConsumer, ledger: DeliveryLedgerStore, node_id: str) -> None:
        self.consumer = consumer
        self.ledger = ledger
        self.node_id = node_id

    async def __call__(self, session: Any) -> None:
        if not session.user_id:
            return
        prompts = await self.consumer.pop_pending(session.user_id)
        for index, prompt in enumerate(prompts):
            try:
                spoken = await session.speak_proactive(prompt.spoken_text, prompt.message_id)
            except asyncio.CancelledError:
                await asyncio.shield(self._hold_again(prompts[index:], "call ended before it was spoken"))
                raise
            if not spoken:
                await self._hold_again([prompt], "not spoken at connect (no pause, cut off or call ended)")
            else:
                log.info(
                    "held proactive prompt spoken: key=%s user=%s call=%s",
                    prompt.idempotency_key,
                    prompt.user_id,
                    session.call_id,
                )

    async def _hold_again(self, prompts: list[Any], detail: str) -> None:
        for prompt in prompts:
            await self.ledger.mark_failed(prompt, self.node_id, detail)


class VoiceNode:
    """``await node.start()`` builds and serves everything; ``await node.stop()`` ends it.

    Attributes for tools and tests: ``bus``, ``ledger``, ``registry``, ``consumer``, ``scheduler``
    (``SchedulerService`` or ``SchedulerClient``), ``deps``, ``base_url``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node_id = settings.server.node_id
        self.base_url = f"http://{settings.server.host}:{settings.server.port}"
        self.registry = SessionRegistry()
        self._cleanup = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self._server: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self._cleanup.aclose()
            raise

    async def _start(self) -> None:
        s = self.settings
        # A path or a postgresql:// DSN; connecting to PostgreSQL blocks, so off the loop.
        self.ledger = await asyncio.to_thread(open_delivery_ledger, s.bus.proactive_ledger)
        self._cleanup.callback(self.ledger.close)
        kb = await self._start_knowledge()
        self.bus: MessageBus = create_bus(s.bus)
        self._cleanup.push_async_callback(self.bus.close)
        llm = await asyncio.to_thread(_shared_llm, s)  # one model for calls and intent analysis
        self.scheduler = await self._start_scheduler(llm)
        self.deps = await build_deps(
            s,
            registry=self.registry,
            retriever=kb.retriever if kb is not None else None,
            callback_scheduler=self.scheduler,
            bus=self.bus,
        )
        self.consumer = ProactivePromptConsumer(
            self.bus, self.registry, self.ledger, self.node_id, topic=s.bus.topic_proactive
        )
        self.deps.on_call_connected.append(HeldPromptGreeting(self.consumer, self.ledger, self.node_id))
        subscriptions = [self.consumer.subscribe()]
        if kb is not None:
            subscriptions.append(
                self.bus.subscribe(s.bus.topic_knowledge, _knowledge_group(s), kb.change_handler)
            )
        await self.bus.start()
        await _wait_ready(subscriptions)
        routes = [
            *self._admin_routes(),
            *(knowledge_routes(kb, self.settings.server.admin_token) if kb is not None else []),
        ]
        await self._serve(routes)

    async def _start_knowledge(self) -> Any:
        if not self.settings.server.rag:
            return None
        kb = await start_knowledge(self.settings)
        if kb is not None:
            self._cleanup.push_async_callback(kb.close)
        return kb

    async def _start_scheduler(self, llm: Any) -> Any:
        from scheduler.ledger_status import LedgerStatusSource

        s = self.settings
        status = LedgerStatusSource(self.ledger)
        if s.bus.backend == "embedded":
            from scheduler.runner import start_embedded_scheduler

            service = await start_embedded_scheduler(s, self.bus, llm=llm, ledger=status)
            self._cleanup.push_async_callback(service.stop)
            return service
        from scheduler.client import SchedulerClient
        from scheduler.publishing import BusPromptPublisher

        client = SchedulerClient(s.scheduler, BusPromptPublisher(self.bus, s.bus.topic_proactive), status)
        self._cleanup.callback(client.close)
        log.info("bus backend %s: campaigns and call-backs run in `voice-agent scheduler`", s.bus.backend)
        return client

    def _admin_routes(self) -> list[Any]:
        from server.admin import AdminDeps, admin_routes
        from server.admin.latency import PrometheusLatency

        deps = AdminDeps.from_scheduler(
            self.scheduler,
            self.settings.server.admin_token,
            live_calls=self.registry,
            latency=PrometheusLatency(),
        )
        return admin_routes(deps)

    async def _serve(self, routes: list[Any]) -> None:
        started = asyncio.Event()

        async def on_started(app: Any) -> None:
            started.set()

        self._server = asyncio.create_task(
            run_server(
                self.settings, deps=self.deps, extra_routes=routes, on_started=on_started, stop=self._stop
            ),
            name=f"node-{self.node_id}-http",
        )
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._server, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if self._server.done():
            waiter.cancel()
            self._server.result()  # raises why the server could not start
            raise RuntimeError(f"node {self.node_id}: the HTTP server stopped during start-up")
        log.info("node %s ready at %s (bus %s)", self.node_id, self.base_url, self.settings.bus.backend)

    async def wait(self, stop_event: asyncio.Event | None = None) -> None:
        """Until ``stop_event`` is set or the server stops on its own (SIGINT/SIGTERM)."""
        assert self._server is not None, "start() first"
        waiters: set[asyncio.Task[Any]] = {self._server}
        if stop_event is not None:
            waiters.add(asyncio.create_task(stop_event.wait()))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in waiters - {self._server}:
            task.cancel()

    async def stop(self) -> None:
        """End every call (records saved), stop serving, then close scheduler, bus, knowledge, ledger."""
        self._stop.set()
        try:
            if self._server is not None:
                await self._server
        finally:
            await self._cleanup.aclose()


async def run_scheduler_process(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """``voice-agent scheduler``: the scheduler's jobs on the configured bus, until SIGINT/SIGTERM or ``stop``."""
    from scheduler.ledger_status import LedgerStatusSource
    from scheduler.runner import start_embedded_scheduler

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as cleanup:
        bus = create_bus(settings.bus)
        cleanup.push_async_callback(bus.close)
        ledger = await asyncio.to_thread(open_delivery_ledger, settings.bus.proactive_ledger)
        cleanup.callback(ledger.close)
        service = await start_embedded_scheduler(settings, bus, ledger=LedgerStatusSource(ledger))
        cleanup.push_async_callback(service.stop)
        await bus.start()
        log.info("scheduler running; stop with Ctrl-C")
        await stop.wait()


async def run_node(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    """``voice-agent serve``: run one node until SIGINT/SIGTERM or ``stop_event``."""
    node = VoiceNode(settings)
    await node.start()
    try:
        await node.wait(stop_event)
    finally:
        await node.stop()


def _shared_llm(settings: Settings) -> Any:
    from agent.llm.registry import create_llm

    return create_llm(settings.agent.llm)  # the process-wide instance build_deps gets too


def _knowledge_group(settings: Settings) -> str:
    # An embedded store is a file per node: every node applies every change. A shared store: one group.
    if settings.knowledge.store == "embedded":
        return f"knowledge-{settings.server.node_id}"
    return "knowledge-ingest"


async def _wait_ready(subscriptions: list[Subscription]) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*(s.wait_ready() for s in subscriptions)), SUBSCRIBE_TIMEOUT_S)
    except TimeoutError:
        pending = [f"{s.topic}/{s.group}" for s in subscriptions if not s.ready.is_set()]
        raise RuntimeError(
            f"bus subscriptions not receiving after {SUBSCRIBE_TIMEOUT_S:.0f} s: {pending}; "
            "check bus.rocketmq.endpoints and that the topics exist (scripts/rocketmq.sh status)"
        ) from None
