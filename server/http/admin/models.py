"""The admin API's bodies as pydantic models: what requests are validated against and what the OpenAPI
document (``server.http.admin.openapi``) is generated from. Campaigns are ``scheduler.campaigns`` models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scheduler.campaigns import CampaignSpec


class ErrorBody(BaseModel):
    error: str
    details: list[dict[str, Any]] | None = Field(None, description="one entry per invalid field")


class CampaignView(CampaignSpec):
    """A campaign as stored, with its schedule state."""

    id: str
    status: Literal["active", "paused", "cancelled", "completed"]
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None


class CampaignList(BaseModel):
    campaigns: list[CampaignView] = Field(description="newest first")


class DeliveryView(BaseModel):
    user_id: str
    run_at: datetime | None
    idempotency_key: str
    prompt_id: str
    status: str = Field(
        description="the scheduler's until the prompt is on the bus (scheduled, deferred, dropped, failed, "
        "published), then the nodes' (claimed, delivered, pending = held for the next call, expired)"
    )
    detail: str | None = None
    updated_at: datetime | None = None


class CampaignDeliveries(BaseModel):
    campaign_id: str
    deliveries: list[DeliveryView] = Field(description="one row per user and run")


class IntentResultView(BaseModel):
    conversation_id: str
    user_id: str
    label: str
    confidence: float
    follow_up: bool
    prompt: str | None = None
    when: datetime | None = None
    fallback: bool
    analyzed_at: datetime


class IntentList(BaseModel):
    intents: list[IntentResultView] = Field(description="newest first")


class ConversationIntents(IntentList):
    conversation_id: str


class LiveCallView(BaseModel):
    """A live call's snapshot (its call record so far, plus its state)."""

    model_config = ConfigDict(extra="allow")

    call_id: str
    user_id: str | None = None
    started_at: float
    transcript: list[dict[str, Any]]
    state: str = Field(description="listening, thinking or speaking")
    connection: str


class CallLoad(BaseModel):
    max_calls: int = Field(description="server.max_calls: calls this node carries at once")
    in_use: int = Field(description="call slots taken now")
    by_transport: dict[str, int] = Field(description="slots in use per transport (webrtc, websocket, sip)")
    refused: int = Field(description="calls refused as 'all lines busy' since the node started")


class LiveCalls(BaseModel):
    calls: list[LiveCallView]
    available: bool = Field(description="false when this server has no call registry")
    load: CallLoad | None = Field(None, description="how full this node is; null when not known")


class SendPromptRequest(BaseModel, extra="forbid"):
    """A prompt to send now: needs text to speak or an intent the agent phrases."""

    user_id: str = Field(min_length=1, max_length=200)
    tenant: str | None = Field(
        None, description="the user's tenant; a tenant's token: its own; default 'default'"
    )
    text: str | None = Field(None, min_length=1, max_length=2000)
    intent: str | None = Field(None, min_length=1, max_length=200)
    ttl_s: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _content(self) -> SendPromptRequest:
        if self.text is None and self.intent is None:
            raise ValueError("a prompt needs 'text' to speak or an 'intent' for the agent")
        return self


class SendPromptResult(BaseModel):
    prompt_id: str
    idempotency_key: str
    user_id: str
    tenant: str
    status: Literal["published", "deferred", "dropped", "duplicate", "failed"]
    expires_at: datetime


class StageLatency(BaseModel):
    stage: str
    count: int
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None


class LatencySummary(BaseModel):
    stages: list[StageLatency]


class CallRecordSummary(BaseModel):
    call_id: str
    user_id: str | None = None
    tenant: str = "default"
    node_id: str
    started_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    turns: int
    interruptions: int
    live: bool = Field(description="the call is still running on this node")


class CallRecordList(BaseModel):
    calls: list[CallRecordSummary] = Field(description="newest first")


class TurnGrounding(BaseModel):
    """Why the agent said what it said in one reply (``agent.turn.TurnRecord.grounding``)."""

    produced_by: str | None = Field(
        description="model_verified, extractive, refused, small_talk, model_unchecked, tool, holding, apology"
    )
    confidence: float | None = Field(description="evidence confidence; null when nothing was retrieved")
    retrieval_queries: list[str]
    evidence: list[dict[str, Any]] = Field(description="doc_id, source_id, sentence, score")
    sentences: list[dict[str, Any]] = Field(description="each spoken sentence: text, produced_by, evidence")
    rejected: list[dict[str, Any]] = Field(description="model sentences not spoken: text, unsupported facts")


class RecordedTurnView(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int
    user_text: str
    agent_text: str
    stages: dict[str, float]
    sources: list[dict[str, Any]]
    interrupted: bool
    grounding: TurnGrounding | None = Field(None, description="null for turns recorded without one")


class CallRecordView(BaseModel):
    """A stored call (or a live call's record so far) with each reply's grounding."""

    model_config = ConfigDict(extra="allow")

    call_id: str
    node_id: str
    user_id: str | None = None
    tenant: str = "default"
    started_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    transcript: list[dict[str, Any]]
    turns: list[RecordedTurnView]
    interruptions: list[dict[str, Any]]
    live: bool


class CallTokenRequest(BaseModel, extra="forbid"):
    """Who the call token is for."""

    user_id: str = Field(pattern=r"^[A-Za-z0-9_.:@+-]{1,128}$")
    tenant: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a tenant's token: its own; default 'default'"
    )
    ttl_s: int | None = Field(None, ge=10, description="default server.call_tokens.default_ttl_s")


class CallTokenIssued(BaseModel):
    token: str = Field(description="send as Authorization: Bearer <token> on the call endpoints")
    user_id: str
    tenant: str
    expires_at: float = Field(description="unix time")
