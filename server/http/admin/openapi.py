"""Hand-written OpenAPI 3 description of the admin API (served at ``<prefix>/openapi.json``)."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "invalid input",
        401: "missing or wrong admin token",
        404: "not found",
        409: "not allowed now",
    }
    return {str(c): _json(_ERROR, text[c]) for c in codes}


_CAMPAIGN_ID = {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CAMPAIGN_REF = {"$ref": "#/components/schemas/Campaign"}


def _campaign_action(verb: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"{verb.capitalize()} a campaign",
            "parameters": [_CAMPAIGN_ID],
            "responses": {"200": _json(_CAMPAIGN_REF, f"the {verb}d campaign"), **_errors(401, 404, 409)},
        }
    }


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Audience": {
        "type": "object",
        "description": "exactly one of user_ids or intent_label (users whose latest intent label is this)",
        "properties": {
            "user_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "intent_label": {"type": "string"},
        },
    },
    "Schedule": {
        "type": "object",
        "description": "exactly one of at (one-off) or cron (five-field crontab)",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "cron": {"type": "string", "example": "0 9 * * MON-FRI"},
            "timezone": {"type": "string", "example": "Europe/Paris"},
        },
    },
    "CampaignSpec": {
        "type": "object",
        "required": ["name", "audience", "schedule"],
        "description": "needs message (text to speak) or intent (the agent phrases it)",
        "properties": {
            "name": {"type": "string"},
            "audience": {"$ref": "#/components/schemas/Audience"},
            "message": {"type": "string"},
            "intent": {"type": "string"},
            "schedule": {"$ref": "#/components/schemas/Schedule"},
            "ttl_s": {"type": "integer", "minimum": 1, "description": "lifetime of each prompt"},
            "ends_at": {"type": "string", "format": "date-time", "description": "no runs after this"},
        },
    },
    "Campaign": {
        "allOf": [
            {"$ref": "#/components/schemas/CampaignSpec"},
            {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string", "enum": ["active", "paused", "cancelled", "completed"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "last_run_at": {"type": "string", "format": "date-time", "nullable": True},
                    "next_run_at": {"type": "string", "format": "date-time", "nullable": True},
                },
            },
        ]
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "user_id": {"type": "string"},
            "run_at": {"type": "string", "format": "date-time"},
            "idempotency_key": {"type": "string"},
            "prompt_id": {"type": "string"},
            "status": {
                "type": "string",
                "description": "ours until an RTC node takes it (scheduled, deferred, dropped, failed, published), then the delivery "
                "ledger's (claimed, delivered, pending = held for the next call, expired)",
            },
            "detail": {"type": "string", "nullable": True},
        },
    },
    "IntentResult": {
        "type": "object",
        "properties": {
            "conversation_id": {"type": "string"},
            "user_id": {"type": "string"},
            "label": {"type": "string"},
            "confidence": {"type": "number"},
            "follow_up": {"type": "boolean"},
            "prompt": {"type": "string", "nullable": True},
            "when": {"type": "string", "format": "date-time", "nullable": True},
            "fallback": {"type": "boolean"},
            "analyzed_at": {"type": "string", "format": "date-time"},
        },
    },
    "LiveCall": {
        "type": "object",
        "properties": {
            "call_id": {"type": "string"},
            "user_id": {"type": "string", "nullable": True},
            "started_at": {"type": "string"},
            "transcript": {"type": "array", "items": {"type": "object"}},
        },
    },
    "SendPrompt": {
        "type": "object",
        "required": ["user_id"],
        "description": "needs text or intent",
        "properties": {
            "user_id": {"type": "string"},
            "text": {"type": "string"},
            "intent": {"type": "string"},
            "ttl_s": {"type": "integer", "minimum": 1},
        },
    },
}


def openapi_document(prefix: str = "/api/admin") -> dict[str, Any]:
    c = f"{prefix}/campaigns"
    paths: dict[str, Any] = {
        c: {
            "get": {
                "summary": "List campaigns",
                "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"campaigns": {"type": "array", "items": _CAMPAIGN_REF}},
                        },
                        "campaigns, newest first",
                    ),
                    **_errors(401),
                },
            },
            "post": {
                "summary": "Create a campaign",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/CampaignSpec"}}
                    },
                },
                "responses": {"201": _json(_CAMPAIGN_REF, "the created campaign"), **_errors(400, 401)},
            },
        },
        c + "/{campaign_id}": {
            "get": {
                "summary": "Get a campaign",
                "parameters": [_CAMPAIGN_ID],
                "responses": {"200": _json(_CAMPAIGN_REF, "the campaign"), **_errors(401, 404)},
            },
            "delete": {
                "summary": "Cancel a campaign (same as POST .../cancel)",
                "parameters": [_CAMPAIGN_ID],
                "responses": {
                    "200": _json(_CAMPAIGN_REF, "the cancelled campaign"),
                    **_errors(401, 404, 409),
                },
            },
        },
        c + "/{campaign_id}/pause": _campaign_action("pause"),
        c + "/{campaign_id}/resume": _campaign_action("resume"),
        c + "/{campaign_id}/cancel": _campaign_action("cancel"),
        c + "/{campaign_id}/deliveries": {
            "get": {
                "summary": "Per-user delivery status of a campaign",
                "parameters": [_CAMPAIGN_ID],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "campaign_id": {"type": "string"},
                                "deliveries": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Delivery"},
                                },
                            },
                        },
                        "one row per user and run",
                    ),
                    **_errors(401, 404),
                },
            }
        },
        f"{prefix}/intents": {
            "get": {
                "summary": "Intent results, newest first",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": t}}
                    for n, t in (("conversation_id", "string"), ("user_id", "string"), ("limit", "integer"))
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "intents": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/IntentResult"},
                                }
                            },
                        },
                        "intent results",
                    ),
                    **_errors(400, 401),
                },
            }
        },
        prefix + "/conversations/{conversation_id}/intents": {
            "get": {
                "summary": "Intent results of one conversation",
                "parameters": [
                    {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _json({"type": "object"}, "intent results"), **_errors(401)},
            }
        },
        f"{prefix}/calls": {
            "get": {
                "summary": "Live calls on this node with their transcripts",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "calls": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/LiveCall"},
                                },
                                "available": {"type": "boolean"},
                            },
                        },
                        "live calls",
                    ),
                    **_errors(401),
                },
            }
        },
        f"{prefix}/prompts": {
            "post": {
                "summary": "Send a proactive prompt to a user now (published to the bus)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SendPrompt"}}},
                },
                "responses": {
                    "202": _json({"type": "object"}, "published; the RTC server delivers it"),
                    "502": _json({"type": "object"}, "the bus refused the message"),
                    **_errors(400, 401),
                },
            }
        },
        f"{prefix}/latency": {
            "get": {
                "summary": "Per-stage latency (count, mean, p50, p95) from this node's Prometheus histograms",
                "responses": {"200": _json({"type": "object"}, "latency summary"), **_errors(401, 404)},
            }
        },
        f"{prefix}/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3"}},
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "voice-agent admin API", "version": "1"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _SCHEMAS,
        },
    }
