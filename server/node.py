"""The composition root: what ``voice-agent serve`` and ``voice-agent scheduler`` run, and what tests and
benches start. Nothing else in the tree builds a bus, a store, a model or a knowledge base for a node.

    scheduler ──ProactivePrompt──> bus (voice_proactive) ──> ProactivePromptConsumer ──> SessionRegistry
        ^                                                         │ delivery ledger (SQLite or PG)
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
from collections.abc import AsyncIterator, Callable
from typing import Any

from messaging.bus import MessageBus, Subscription
from messaging.registry import create_bus
from server.calls.admission import CallAdmission
from server.calls.conversation_events import ConversationEventPublisher
from server.calls.identity import DEFAULT_TENANT
from server.calls.memory_trim import HeapTrimmer
from server.calls.registry import SessionRegistry
from server.calls.session import CallDeps
from server.calls.tenancy import TenantCallbacks
from server.http.app import create_app, knowledge_routes, serve
from server.http.guards import Security
from server.phone.service import Telephony
from server.proactive import ProactivePromptConsumer
from server.proactive.abandoned_claims import AbandonedClaimSweeper
from server.proactive.held_prompts import HeldPromptGreeting
from server.security.startup import secure_settings
from server.settings import Settings
from server.storage.call_records import open_call_record_store
from server.storage.delivery_ledger import SqlDeliveryLedger, open_delivery_ledger
from server.storage.spool import DiskSpool
from server.storage.spooled_records import SpoolingCallRecordStore

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 90.0  # RocketMQ: route lookup and the first receive of each consumer group


class VoiceNode:
    """``await node.start()`` builds and serves everything; ``await node.stop()`` ends it.

    Attributes for tools and tests: ``bus``, ``ledger``, ``registry``, ``consumer``, ``scheduler``
    (``SchedulerService`` or ``SchedulerClient``), ``deps``, ``security``, ``app``, ``base_url``, ``phone``
    (``Telephony``: the directory, the SIP user agent when ``sip.enabled``, the outreach)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node_id = settings.server.node_id
        self.base_url = f"http://{settings.server.host}:{settings.server.port}"
        self.registry = SessionRegistry()
        self.heap_trimmer: HeapTrimmer | None = None
        if settings.server.heap_trim_interval_s > 0:
            self.heap_trimmer = HeapTrimmer(settings.server.heap_trim_interval_s)
            self.registry.observers.append(self.heap_trimmer)
        self._cleanup = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self._server: asyncio.Task[None] | None = None
        # Components that failed to start, with why: the node serves calls without them, and /readyz
        # answers "degraded" naming them (still 200: calls work), so an operator sees it.
        self.degraded: dict[str, str] = {}
        self.knowledge: Any = None  # the KnowledgeBase when server.rag is on and it started

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self._cleanup.aclose()
            raise

    async def _start(self) -> None:
        # Refuses a placeholder admin token beyond loopback; on loopback replaces it with a printed one.
        s = self.settings = secure_settings(self.settings)
        self.security = Security.from_settings(s)
        # A path or a postgresql:// DSN; connecting to PostgreSQL blocks, so off the loop.
        self.ledger = await asyncio.to_thread(_open_ledger, s)
        self._cleanup.callback(self.ledger.close)
        if self.heap_trimmer is not None:
            self._cleanup.push_async_callback(self.heap_trimmer.stop)
        kb = await self._start_knowledge()
        self.bus: MessageBus = create_bus(s.bus)
        self._cleanup.push_async_callback(self.bus.close)
        llm = await asyncio.to_thread(_shared_llm, s)  # one model for calls and intent analysis
        self.scheduler = await self._start_scheduler(llm)
        self.deps = await build_call_deps(
            s,
            registry=self.registry,
            retriever=kb.retriever if kb is not None else None,
            embedder=kb.embedder if kb is not None else None,
            callback_scheduler=self.scheduler,
            bus=self.bus,
        )
        self._cleanup.callback(self.deps.records.close)
        if self.deps.conversation_events is not None:
            self._cleanup.push_async_callback(self.deps.conversation_events.drain)
        self.phone = await Telephony.open(s, self.deps, self.ledger, self.bus)
        self._cleanup.push_async_callback(self.phone.stop)
        self.consumer = ProactivePromptConsumer(
            self.bus,
            self.registry,
            self.ledger,
            self.node_id,
            topic=s.bus.topic_proactive,
            delivery=self.phone.delivery,
            outreach=self.phone.outreach,
        )
        self.deps.on_call_connected.append(HeldPromptGreeting(self.consumer, self.ledger, self.node_id))
        subscriptions = [self.consumer.subscribe()]
        if kb is not None:
            subscriptions.append(
                self.bus.subscribe(s.bus.topic_knowledge, _knowledge_group(s), kb.change_handler)
            )
        await self.bus.start()
        await _wait_ready(subscriptions)
        await self.phone.start(self.registry)
        sweeper = AbandonedClaimSweeper(
            self.phone.presence_store,
            self.consumer,
            self.node_id,
            window_s=self.phone.tracker.window_s,
            interval_s=self.phone.tracker.heartbeat_s,
            clock=self.ledger.clock,
        )
        sweeper.start()
        self._cleanup.push_async_callback(sweeper.stop)
        routes = [
            *self._admin_routes(kb),
            *(knowledge_routes(kb, self.security) if kb is not None else []),
        ]
        await self._serve(routes)

    async def _start_knowledge(self) -> Any:
        if not self.settings.server.rag:
            return None
        kb, problem = await start_knowledge(self.settings)
        self.knowledge = kb
        if kb is not None:
            self._cleanup.push_async_callback(kb.close)
        else:
            self.degraded["knowledge"] = problem or "not started"
        return kb

    async def _start_scheduler(self, llm: Any) -> Any:
        s = self.settings
        if s.bus.backend == "embedded":
            from scheduler.runner import start_embedded_scheduler

            service = await start_embedded_scheduler(s, self.bus, self.ledger, llm=llm)
            self._cleanup.push_async_callback(service.stop)
            return service
        from scheduler.client import SchedulerClient
        from scheduler.publishing import BusPromptPublisher

        client = SchedulerClient(
            s.scheduler, BusPromptPublisher(self.bus, s.bus.topic_proactive), self.ledger
        )
        self._cleanup.callback(client.close)
        log.info("bus backend %s: campaigns and call-backs run in `voice-agent scheduler`", s.bus.backend)
        return client

    def _admin_routes(self, kb: Any) -> list[Any]:
        from agent.evaluation import EvaluationTarget
        from server.http.admin import AdminDeps, admin_routes
        from server.http.admin.evaluations import EvaluationJobs
        from server.http.admin.latency import PrometheusLatency

        evaluations = None
        if kb is not None:  # the dashboard's evaluations run on the calls' own agent and knowledge base
            target = EvaluationTarget.of_calls(self.deps.new_conversation, kb.retriever, self.settings.agent)
            evaluations = EvaluationJobs(target)
            self._cleanup.push_async_callback(evaluations.close)
        deps = AdminDeps.from_scheduler(
            self.scheduler,
            self.settings.server.admin_token,
            live_calls=self.registry,
            latency=PrometheusLatency(),
            load=self.deps.admission,
            records=self.deps.records,
            evaluations=evaluations,
            guard=self.security.admins,
            call_tokens=self.security.call_tokens,
        )
        from server.http.admin.phone import phone_endpoints

        phone = phone_endpoints(self.phone.directory, self.phone.outreach, self.phone.store)
        return admin_routes(deps, extra=phone)

    async def _serve(self, routes: list[Any]) -> None:
        started = asyncio.Event()

        async def on_started(app: Any) -> None:
            started.set()

        records_problem = getattr(self.deps.records, "problem", None)  # the spooling store's
        app = self.app = create_app(
            self.settings,
            self.deps,
            extra_routes=routes,
            degraded=self.degraded,
            security=self.security,
            checks={"call records": records_problem} if records_problem else None,
        )
        self._server = asyncio.create_task(
            serve(
                app,
                self.settings.server.host,
                self.settings.server.port,
                on_started=on_started,
                stop=self._stop,
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
        """End every call (records saved), stop serving, then close events, records, scheduler, bus,
        knowledge and ledger."""
        self._stop.set()
        try:
            if self._server is not None:
                await self._server
        finally:
            await self._cleanup.aclose()


async def run_node(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    """``voice-agent serve``: run one node until SIGINT/SIGTERM or ``stop_event``."""
    node = VoiceNode(settings)
    await node.start()
    try:
        await node.wait(stop_event)
    finally:
        await node.stop()


async def run_scheduler_process(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """``voice-agent scheduler``: the scheduler's jobs on the configured bus, until SIGINT/SIGTERM or ``stop``."""
    from scheduler.runner import start_embedded_scheduler

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as cleanup:
        bus = create_bus(settings.bus)
        cleanup.push_async_callback(bus.close)
        ledger = await asyncio.to_thread(_open_ledger, settings)
        cleanup.callback(ledger.close)
        service = await start_embedded_scheduler(settings, bus, ledger)
        cleanup.push_async_callback(service.stop)
        await bus.start()
        log.info("scheduler running; stop with Ctrl-C")
        await stop.wait()


async def start_knowledge(settings: Settings) -> tuple[Any, str | None]:
    """``(knowledge base, None)``, or ``(None, why)`` when it cannot start here: calls then run without
    retrieval, and the node reports itself degraded (``/readyz``) instead of pretending all is well."""
    try:
        from knowledge.knowledge_base import KnowledgeBase

        kb = await asyncio.to_thread(KnowledgeBase, settings.knowledge)  # loads the embedding model
        await kb.start()
        return kb, None
    except Exception as exc:  # a missing model or an unreachable store must not stop calls
        problem = f"{type(exc).__name__}: {exc}"
        log.error("knowledge base not started, calls run without retrieval: %s", problem, exc_info=exc)
        return None, problem


@contextlib.asynccontextmanager
async def evaluation_target(settings: Settings) -> AsyncIterator[Any]:
    """The configured agent as ``voice-agent eval`` runs it: the knowledge base (its watched folder ingested
    first; a knowledge base that cannot start is an error here, not a silent fallback), the shared LLM and
    conversations built as calls build them. Yields an ``agent.evaluation.EvaluationTarget``."""
    from agent.evaluation import EvaluationTarget
    from agent.llm.registry import create_llm
    from knowledge.knowledge_base import KnowledgeBase

    async with contextlib.AsyncExitStack() as cleanup:
        kb = None
        if settings.server.rag:
            kb = await asyncio.to_thread(KnowledgeBase, settings.knowledge)
            await kb.start()
            cleanup.push_async_callback(kb.close)
            await kb.ingestor.wait_idle()
        else:
            log.warning(
                "server.rag is false: the agent has no knowledge base, every question will be refused"
            )
        llm = await asyncio.to_thread(create_llm, settings.agent.llm)
        retriever = kb.retriever if kb is not None else None
        embedder = kb.embedder if kb is not None else None
        new_conversation = conversation_factory(settings, llm, retriever, None, embedder)
        yield EvaluationTarget.of_calls(new_conversation, retriever, settings.agent)


async def build_call_deps(
    settings: Settings,
    *,
    registry: SessionRegistry | None = None,
    retriever: Any = None,
    callback_scheduler: Any = None,
    bus: MessageBus | None = None,
    embedder: Any = None,
) -> CallDeps:
    """Load the shared models (STT, TTS, LLM) once and build what every call needs.

    ``retriever``: ``agent.retrieval.Retriever`` for RAG (e.g. ``KnowledgeBase.retriever``);
    ``callback_scheduler``: ``agent.tools.CallbackScheduler`` for the schedule-callback tool;
    ``bus``: a started ``messaging.MessageBus``: calls publish ``ConversationEvent``s on it;
    ``embedder``: the knowledge base's embedder, so grounded answers rank evidence sentences by meaning.
    The caller closes ``deps.records`` (and drains ``deps.conversation_events``) when done."""
    from agent.llm.registry import create_llm
    from speech.stt.registry import create_stt
    from speech.tts.registry import create_tts

    stt = create_stt(settings.speech.stt)
    tts = await asyncio.to_thread(create_tts, settings.speech.tts)
    llm = await asyncio.to_thread(create_llm, settings.agent.llm)
    await stt.warm_up()
    await _warm_up(tts, llm)
    storage = settings.storage
    node_id = settings.server.node_id
    records = SpoolingCallRecordStore(
        await asyncio.to_thread(
            open_call_record_store,
            storage.records,
            connect_timeout_s=storage.connect_timeout_s,
            statement_timeout_s=storage.statement_timeout_s,
        ),
        await asyncio.to_thread(_spool, settings, "call-records"),
        storage.spool_retry_s,
    )
    records.start()
    events = None
    if bus is not None:
        spool = await asyncio.to_thread(_spool, settings, "conversation-events")
        events = ConversationEventPublisher(
            bus, settings.bus.topic_conversation, node_id, spool=spool, retry_s=storage.spool_retry_s
        )
        events.start()
    return CallDeps(
        speech=settings.speech,
        call=settings.server.call,
        ice_servers=list(settings.server.ice_servers),
        node_id=settings.server.node_id,
        greeting=settings.agent.greeting,
        apology=settings.agent.apology,
        admission=CallAdmission(settings.server.max_calls, settings.server.busy_retry_after_s),
        stt=stt,
        tts=tts,
        new_conversation=conversation_factory(settings, llm, retriever, callback_scheduler, embedder),
        records=records,
        registry=registry if registry is not None else SessionRegistry(),  # an empty registry is falsy
        conversation_events=events,
    )


async def _warm_up(tts: Any, llm: Any) -> None:
    """One tiny synthesis and generation at start-up, so the first caller does not pay for lazy init."""
    from agent.llm.base import Message

    try:
        async for _ in tts.synthesize("Hello."):
            pass
        async for _ in llm.stream_chat([Message("user", "Hi")], max_tokens=1):
            pass
    except Exception:  # a failing warm-up is not fatal: the first call will show the error
        log.exception("model warm-up failed")


def conversation_factory(
    settings: Settings,
    llm: Any,
    retriever: Any = None,
    callback_scheduler: Any = None,
    embedder: Any = None,
) -> Callable[[str | None, Any], Any]:
    """``(user_id, call_control) -> agent.conversation.Conversation`` on the shared LLM, with tools and
    memory.

    Everything a conversation reads is limited to the tenant of its call (``call_control.tenant``, a
    ``CallSession``): retrieval, memory, call-backs. An anonymous caller gets no memory at all."""
    from agent.conversation import Conversation
    from agent.memory import MemoryStore
    from agent.tools import ToolBox
    from knowledge.retrieval import TenantRetriever

    cfg = settings.agent
    memory = MemoryStore(cfg.memory_path, cfg.memory_max_facts)

    def new_conversation(user_id: str | None, call_control: Any) -> Any:
        uid = user_id or "anonymous"
        tenant = getattr(call_control, "tenant", DEFAULT_TENANT)
        anonymous = not user_id or getattr(call_control, "anonymous", False)
        scoped = TenantRetriever(retriever, tenant) if retriever is not None else None
        callbacks = TenantCallbacks(callback_scheduler, tenant) if callback_scheduler is not None else None
        tools = ToolBox(
            scoped,
            callbacks,
            call_control,
            user_id=uid,
            fallback=cfg.tool_fallback,
            transfer_target=cfg.transfer_target,
            top_k=cfg.retrieval_top_k,
        )
        return Conversation(
            llm,
            cfg,
            retriever=scoped,
            tools=tools,
            memory=None if anonymous else memory.for_tenant(tenant),
            user_id=uid,
            call_id=getattr(call_control, "call_id", None),
            embedder=embedder,
        )

    return new_conversation


def _open_ledger(settings: Settings) -> SqlDeliveryLedger:
    storage = settings.storage
    return open_delivery_ledger(
        storage.delivery_ledger,
        connect_timeout_s=storage.connect_timeout_s,
        statement_timeout_s=storage.statement_timeout_s,
    )


def _spool(settings: Settings, name: str) -> DiskSpool:
    """This node's outage spool ``name`` (one per node: nodes on one machine never drain each other's)."""
    storage = settings.storage
    max_bytes = int(storage.spool_max_mb * (1 << 20))
    return DiskSpool(storage.spool_root(), f"{settings.server.node_id}-{name}", max_bytes=max_bytes)


def _shared_llm(settings: Settings) -> Any:
    from agent.llm.registry import create_llm

    return create_llm(settings.agent.llm)  # the process-wide instance build_call_deps gets too


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
