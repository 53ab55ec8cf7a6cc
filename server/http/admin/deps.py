"""What the admin API needs from the rest of the server, as small Protocols.

``scheduler.service.SchedulerService`` satisfies ``CampaignAdmin`` and ``PromptSender``; its
``conversation_log`` satisfies ``IntentResultSource``; ``server.calls.registry.SessionRegistry`` satisfies
``LiveCallDirectory``; ``server.http.admin.latency.PrometheusLatency`` satisfies ``LatencySource``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from scheduler.campaigns import Campaign, CampaignSpec
from server.http.guards import AdminGuard
from server.security.admin_auth import AdminAuthenticator
from server.security.call_tokens import CallTokens


class CampaignAdmin(Protocol):
    async def create_campaign(self, spec: CampaignSpec) -> Campaign: ...

    def list_campaigns(self, status: str | None = None) -> list[Campaign]: ...

    def get_campaign(self, campaign_id: str) -> Campaign: ...

    async def pause_campaign(self, campaign_id: str) -> Campaign: ...

    async def resume_campaign(self, campaign_id: str) -> Campaign: ...

    async def cancel_campaign(self, campaign_id: str) -> Campaign: ...

    def next_run_time(self, campaign_id: str) -> datetime | None: ...

    async def campaign_deliveries(self, campaign_id: str) -> list[dict[str, Any]]: ...


class PromptSender(Protocol):
    async def send_prompt_now(
        self,
        user_id: str,
        text: str | None = None,
        intent: str | None = None,
        ttl_s: int | None = None,
        tenant: str = "default",
    ) -> dict[str, Any]: ...


class IntentResultSource(Protocol):
    def intent_results(
        self,
        conversation_id: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
        tenant: str | None = None,
    ) -> list[dict[str, Any]]: ...


class CallSnapshot(Protocol):
    def snapshot(self) -> dict[str, Any]: ...  # call_id, user_id, started_at, transcript


class LiveCallDirectory(Protocol):
    def live(self) -> Sequence[CallSnapshot]: ...


class LatencySource(Protocol):
    def latency_summary(self) -> dict[str, Any]: ...


class LoadSource(Protocol):
    def snapshot(self) -> dict[str, Any]: ...  # server.calls.admission.CallAdmission


class CallRecordSource(Protocol):
    """``server.calls.record.CallRecordStore``: the calls the dashboard lists and opens."""

    async def get(self, call_id: str) -> Any: ...  # a CallRecord or None

    async def recent(
        self, limit: int = 50, user_id: str | None = None, tenant: str | None = None
    ) -> list[dict[str, Any]]: ...


@dataclass
class AdminDeps:
    """``guard``: who may call the API (the node's, with its failed-authentication limit; by default one
    accepting ``admin_token`` only); ``call_tokens``: issues call tokens (``POST /call-tokens``)."""

    admin_token: str
    campaigns: CampaignAdmin
    prompts: PromptSender
    intents: IntentResultSource
    live_calls: LiveCallDirectory | None = None
    latency: LatencySource | None = None
    load: LoadSource | None = None
    records: CallRecordSource | None = None  # stored calls, with each reply's grounding
    evaluations: Any = None  # ``server.http.admin.evaluations.EvaluationJobs`` when a knowledge base runs
    guard: AdminGuard | None = None
    call_tokens: CallTokens | None = None

    def __post_init__(self) -> None:
        if self.guard is None:
            self.guard = AdminGuard(AdminAuthenticator(self.admin_token))

    @classmethod
    def from_scheduler(
        cls,
        service: Any,
        admin_token: str,
        live_calls: LiveCallDirectory | None = None,
        latency: LatencySource | None = None,
        *,
        load: LoadSource | None = None,
        records: CallRecordSource | None = None,
        evaluations: Any = None,
        guard: AdminGuard | None = None,
        call_tokens: CallTokens | None = None,
    ) -> AdminDeps:
        """Deps for a server that runs ``SchedulerService`` in-process (the embedded profile)."""
        return cls(
            admin_token,
            service,
            service,
            service.conversation_log,
            live_calls,
            latency,
            load=load,
            records=records,
            evaluations=evaluations,
            guard=guard,
            call_tokens=call_tokens,
        )
