"""Typed settings of the phone side of the product (section ``phone``): the directory of phone numbers,
what a SIP call says when nobody speaks, and the outreach policy for outbound calls.

The SIP protocol settings (listen addresses, trunk, codecs...) are the ``sip`` section
(``server.transports.sip.SipConfig``); this section is what the bridge and the outreach add on top.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator


class OutreachPolicyConfig(BaseModel, extra="forbid"):
    """When a node may ring a user's phone for a proactive prompt (presence-aware outreach)."""

    enabled: bool = True  # False: prompts for users in no call are only held (never dialled)
    # Local hours (the user's time zone from the directory) in which nobody is rung: (start, end), e.g.
    # (21, 8) = 21:00 to 08:00. A prompt due then waits for the end of quiet hours (if it has not expired).
    quiet_hours: tuple[int, int] | None = (21, 8)
    max_attempts: int = Field(3, ge=1, le=20)  # dial attempts per prompt (busy / no answer are retried)
    min_gap_s: float = Field(600.0, ge=0)  # between two dial attempts to the same user (any prompt)
    ring_timeout_s: float | None = Field(None, gt=0, le=600)  # None: sip.ring_timeout_s
    # After the last attempt: hold it for the user's next call, mark it expired, or dead-letter it
    # (published to <topic>_dlq with the reason).
    on_exhausted: Literal["hold", "expire", "dead_letter"] = "hold"
    sweep_interval_s: float = Field(1.0, gt=0, le=60)  # how often a node looks for retries that are due
    # A dial claim older than this whose node never finished it (the node died) may be taken over.
    stale_dial_s: float = Field(300.0, ge=30)

    @field_validator("quiet_hours")
    @classmethod
    def _hours(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(0 <= h <= 23 for h in value):
            raise ValueError(f"quiet_hours must be two hours in 0..23, got {value}")
        return value


class PhoneConfig(BaseModel, extra="forbid"):
    # YAML list of {number, user_id, tenant, timezone, sip_uri?, display_name?}, loaded into the directory
    # table at start (entries from the file replace the file's earlier entries; admin entries stay).
    directory_file: str | None = None
    # The caller said nothing for sip.no_speech_hangup_s (answering machine, open line): say this, hang up.
    no_speech_goodbye: str = "I can't hear anyone on the line, so I'll end the call now. Goodbye!"
    # Seconds to wait for a key after a prompt that expects digits ("press 1 to confirm").
    key_response_timeout_s: float = Field(10.0, gt=0, le=120)
    # Refer-To of the transfer tool when its target is a name or number rather than a sip: URI; {target}
    # is replaced. None: sip:{target}@<trunk domain> when a trunk is configured.
    transfer_uri: str | None = None
    # Presence of callers across nodes (the shared delivery-ledger database): each node refreshes its rows
    # this often; a row not refreshed for 3 intervals belongs to a dead node and is ignored.
    presence_heartbeat_s: float = Field(5.0, gt=0, le=300)
    outreach: OutreachPolicyConfig = OutreachPolicyConfig()

    @model_validator(mode="after")
    def _transfer_template(self) -> PhoneConfig:
        if self.transfer_uri is not None and "{target}" not in self.transfer_uri:
            raise ValueError("phone.transfer_uri must contain {target}, e.g. sip:{target}@pbx.example.com")
        return self
