"""The OpenAPI 3.1 description of `/api/v1/`, served at `/api/v1/openapi.json`.

Written by hand next to the views, and kept honest by tests: every route of the blueprint is
described here with its methods (and nothing else is), and responses are checked against
these schemas in tests/test_api.py.
"""
from __future__ import annotations

from typing import Any

from connector.config import HELPDESKS
from connector.draft_check import RULES, SEVERITIES
from connector.labels import VALUE_NAMES
from connector.sidebar import CORRECTABLE_LABELS
from connector.version import __version__

_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_URL_OR_NULL = {"type": ["string", "null"], "format": "uri", "description": "http(s) only"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_ERRORS = {
    "400": _error_response("Invalid input; `field` names the bad field."),
    "401": _error_response("Missing, unknown or revoked bearer token."),
    "404": _error_response("Not a ticket Yorisoi created (`code: unknown_ticket`); the sidebar shows `message_ja`/`message_en`."),
    "429": {**_error_response("Over the token's rate limit; see the Retry-After header."),
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}},
}

_HELPDESK_PARAM = {"type": "string", "enum": list(HELPDESKS),
                   "description": "The helpdesk the ticket lives in (default: the connector's configured helpdesk)."}
_TICKET = {"type": ["string", "integer"], "pattern": r"^[A-Za-z0-9_.:-]{1,64}$",
           "description": "The helpdesk's ticket id (as in its URL)."}
_AGENT = {"type": "string", "maxLength": 200,
          "description": "Always the token's agent; any other name is refused with 403 (leave it out)."}


def _schemas() -> dict[str, Any]:
    label = {"type": "object", "required": ["value", "score", "evidence"], "properties": {
        "value": {"type": "string"}, "value_ja": {"type": "string"}, "value_en": {"type": "string"},
        "name_ja": {"type": "string"}, "name_en": {"type": "string"}, "score": {"type": ["number", "null"]},
        "evidence": {"type": "array", "items": {"type": "string"}},
        "evidence_ja": {"type": "array", "items": {"type": "string"}}}}
    return {
        "Error": {"type": "object", "required": ["error", "code", "message_ja", "message_en"], "properties": {
            "error": {"type": "string"}, "code": {"type": "string"}, "message_ja": {"type": "string"},
            "message_en": {"type": "string"}, "field": {"type": "string"}, "retry_after": {"type": "integer"}}},
        "Label": label,
        "Me": {"type": "object", "required": ["agent", "token_id"], "properties": {
            "agent": {"type": "string"}, "token_id": {"type": "integer"}}},
        "Exchange": {"type": "object", "required": ["agent", "text", "status", "created_at"], "properties": {
            "agent": {"type": "string"}, "text": {"type": "string"},
            "status": {"type": "string", "enum": ["sending", "sent", "prepared", "recorded", "failed", "unknown"]},
            "url": _URL_OR_NULL, "created_at": {"type": "string", "format": "date-time"},
            "sent_at": {"type": ["string", "null"], "format": "date-time"},
            "helpdesk": {"type": "string"}, "ticket_id": {"type": "string"}}},
        "Context": {"type": "object",
                    "required": ["ticket", "post", "analysis", "author", "history", "exchanges", "other_tickets",
                                 "sentiment_history", "label_sets", "corrections", "storm", "reply_guidelines",
                                 "similar_cases", "suggested_draft"],
                    "properties": {
            "ticket": {"type": ["object", "null"], "description": "null for Zendesk Channel framework tickets (looked up by external_id).",
                       "properties": {"helpdesk": {"type": "string"}, "id": {"type": "string"}, "url": _URL_OR_NULL,
                                      "subject": {"type": "string"}, "priority": {"type": "string"},
                                      "tags": {"type": "array", "items": {"type": "string"}},
                                      "external_id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}}},
            "post": {"type": "object", "required": ["key", "platform", "text", "created_at", "reply"], "properties": {
                "key": {"type": "string"}, "platform": {"type": "string"}, "platform_name": {"type": "string"},
                "url": _URL_OR_NULL, "text": {"type": "string", "description": "Untrusted: render as text only."},
                "created_at": {"type": "string", "format": "date-time"}, "lang": _STR_OR_NULL, "brand": _STR_OR_NULL,
                "metrics": {"type": "object"},
                "reply": {"type": "object", "required": ["mode", "url"], "properties": {
                    "mode": {"type": "string", "enum": ["api", "prepared", "recorded", "none"],
                             "description": "api: the helpdesk reply goes out through the network's API; prepared: "
                                            "open `url` (an X intent link) to post it by hand; recorded: no network "
                                            "configured, replies are kept in Yorisoi; none: answer on the site (`url`)."},
                    "url": _URL_OR_NULL}}}},
            "analysis": {"type": ["object", "null"], "properties": {
                "labels": {"type": "object", "additionalProperties": _ref("Label")},
                "language": _STR_OR_NULL, "version": _STR_OR_NULL}},
            "author": {"type": "object", "properties": {
                "name": _STR_OR_NULL, "handle": _STR_OR_NULL, "bio": _STR_OR_NULL, "location": _STR_OR_NULL,
                "followers": _INT_OR_NULL, "following": _INT_OR_NULL,
                "account_created_at": {"type": ["string", "null"], "format": "date-time"},
                "account_age_days": _INT_OR_NULL,
                "avatar_url": {"type": ["string", "null"], "format": "uri", "description": "https only"},
                "profile_url": _URL_OR_NULL}},
            "history": {"type": "array", "description": "The author's earlier posts about the brand, newest first.",
                        "items": {"type": "object", "required": ["key", "text", "created_at"], "properties": {
                            "key": {"type": "string"}, "url": _URL_OR_NULL, "text": {"type": "string"},
                            "created_at": {"type": "string", "format": "date-time"}, "sentiment": _STR_OR_NULL,
                            "sentiment_score": {"type": ["number", "null"]}, "intent": _STR_OR_NULL,
                            "ticket": {"type": ["object", "null"]}}}},
            "exchanges": {"type": "array", "description": "The team's replies to this author, newest first.",
                          "items": _ref("Exchange")},
            "storm": {"type": ["object", "null"], "description": "The storm (炎上) this post belongs to, or null.",
                      "required": ["id", "size", "first_post", "answers", "active", "statement"], "properties": {
                "id": {"type": "integer"}, "size": {"type": "integer"}, "topic": _STR_OR_NULL, "brand": {"type": "string"},
                "active": {"type": "boolean", "description": "An outage in progress (the sidebar's banner): posts still "
                           "join the storm within YORISOI_STORM_WINDOW_MINUTES, or the brand's spike alert is on."},
                "statement": {"type": ["object", "null"], "description": "The team's latest public statement on the storm, "
                              "written by a supervisor on the dashboard's 炎上 page.", "properties": {
                    "text": {"type": "string"}, "url": _URL_OR_NULL, "author": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"}}},
                "started_at": _STR_OR_NULL, "last_post_at": _STR_OR_NULL, "role": _STR_OR_NULL,
                "reason": _STR_OR_NULL, "similarity": {"type": ["number", "null"]},
                "first_post": {"type": "object", "properties": {
                    "key": {"type": "string"}, "text": {"type": "string"}, "url": _URL_OR_NULL}},
                "problem_ticket": {"type": ["object", "null"], "properties": {
                    "helpdesk": {"type": "string"}, "id": {"type": "string"}, "url": _URL_OR_NULL}},
                "answers": {"type": "array", "items": {"type": "object", "properties": {
                    "agent": {"type": "string"}, "text": {"type": "string"}, "status": {"type": "string"},
                    "created_at": _STR_OR_NULL, "ticket_id": {"type": "string"}}}}}},
            "reply_guidelines": {"type": ["object", "null"], "description": "The brand's [brand.reply] from the watch file (null: none).",
                                 "properties": {
                "signature": {"type": "string"}, "signature_en": {"type": "string"}, "tone": {"type": "string"},
                "tone_en": {"type": "string"}, "avoid_words": {"type": "array", "items": {"type": "string"}},
                "dm_handoff": {"type": "string"}, "dm_handoff_en": {"type": "string"},
                "faq": {"type": "array", "items": {"type": "object", "required": ["topic", "url"], "properties": {
                    "topic": {"type": "string"}, "keywords": {"type": "array", "items": {"type": "string"}},
                    "url": {"type": "string"}, "title": {"type": "string"}, "title_en": {"type": "string"}}}},
                "faq_matched": {"type": "array", "items": {"type": "string"}, "description": "Topics this post is about."}}},
            "similar_cases": {"type": "array", "maxItems": 5, "description": "The team's answers to the most similar earlier "
                              "posts of the brand, best first.", "items": _ref("SimilarCase")},
            "suggested_draft": {"type": "object", "required": ["text", "lang", "parts"], "description":
                                "A first draft for the agent to edit; inserted only when the agent clicks, never sent by Yorisoi.",
                                "properties": {
                "text": {"type": "string"}, "lang": {"type": "string", "enum": ["ja", "en"]}, "agent": _STR_OR_NULL,
                "parts": {"type": "array", "items": {"type": "object", "required": ["kind", "text"], "properties": {
                    "kind": {"type": "string", "enum": ["greeting", "situation", "faq", "dm_handoff", "signature"]},
                    "text": {"type": "string"}}}}}},
            "other_tickets": {"type": "array", "items": {"type": "object", "properties": {
                "helpdesk": {"type": "string"}, "id": {"type": "string"}, "url": _URL_OR_NULL,
                "subject": {"type": "string"}, "priority": {"type": "string"}, "sentiment": _STR_OR_NULL,
                "intent": _STR_OR_NULL, "created_at": {"type": "string", "format": "date-time"}}}},
            "sentiment_history": {"type": "array", "description": "Oldest first, for a chart.", "items": {
                "type": "object", "required": ["at", "score", "sentiment"], "properties": {
                    "at": {"type": "string", "format": "date-time"}, "score": {"type": "number"},
                    "sentiment": {"type": "string"}, "key": {"type": "string"}, "current": {"type": "boolean"}}}},
            "corrections": {"type": "object", "description": "The newest agent correction per label of this post.",
                            "additionalProperties": {"type": "object", "required": ["value", "agent", "at"], "properties": {
                                "value": {"type": "string"}, "previous": _STR_OR_NULL, "agent": {"type": "string"},
                                "at": {"type": "string", "format": "date-time"}}}},
            "label_sets": {"type": "object", "description": "Values the correction buttons offer, per label.",
                           "additionalProperties": {"type": "array", "items": {"type": "object", "properties": {
                               "value": {"type": "string"}, "ja": {"type": "string"}, "en": {"type": "string"}}}}},
        }},
        "SimilarCase": {"type": "object", "required": ["post", "reply", "reaction", "score"], "properties": {
            "post": {"type": "object", "required": ["key", "text"], "properties": {
                "key": {"type": "string"}, "text": {"type": "string", "description": "Untrusted: render as text only."},
                "url": _URL_OR_NULL, "created_at": {"type": "string", "format": "date-time"}, "author": _STR_OR_NULL}},
            "reply": {"type": "object", "required": ["agent", "text"], "properties": {
                "agent": {"type": "string"}, "text": {"type": "string"}, "status": {"type": "string"},
                "at": {"type": ["string", "null"], "format": "date-time"}, "url": _URL_OR_NULL,
                "helpdesk": {"type": "string"}, "ticket_id": {"type": "string"}}},
            "reaction": {"type": "object", "required": ["verdict"], "description": "The customer's next post about the brand "
                         "after the reply: thanks or positive = good, negative = bad, none within 7 days = none.", "properties": {
                "verdict": {"type": "string", "enum": ["good", "bad", "neutral", "none"]},
                "reason_ja": {"type": "string"}, "reason_en": {"type": "string"}, "text": _STR_OR_NULL,
                "at": {"type": ["string", "null"], "format": "date-time"}}},
            "score": {"type": "number"}, "shared_labels": {"type": "array", "items": {"type": "string"}}}},
        "Finding": {"type": "object", "required": ["rule", "severity", "message_ja", "message_en", "hint_ja", "hint_en"],
                    "properties": {
            "rule": {"type": "string", "enum": list(RULES)}, "severity": {"type": "string", "enum": list(SEVERITIES)},
            "message_ja": {"type": "string"}, "message_en": {"type": "string"},
            "hint_ja": {"type": "string"}, "hint_en": {"type": "string"},
            "span": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                     "description": "[start, end) in Unicode code points of `text`."}}},
        "DraftCheckRequest": {"type": "object", "required": ["ticket", "text"], "properties": {
            "ticket": _TICKET, "helpdesk": _HELPDESK_PARAM,
            "text": {"type": "string", "minLength": 1, "maxLength": 10000}, "agent": _AGENT}},
        "DraftCheckResult": {"type": "object", "required": ["findings", "counts", "agent", "signed_text", "length", "graphemes"],
                             "properties": {
            "findings": {"type": "array", "items": _ref("Finding"), "description": "Errors first."},
            "counts": {"type": "object", "properties": {s: {"type": "integer"} for s in SEVERITIES}},
            "agent": {"type": "string"},
            "signed_text": {"type": "string", "description": "The reply as it would be sent (signature appended when the agent is not named)."},
            "length": {"type": ["object", "null"], "description": "The signed text as the network counts it (null: no limit).",
                       "properties": {
                "platform": {"type": "string"}, "count": {"type": "integer"}, "limit": {"type": "integer"},
                "unit": {"type": "string", "enum": ["x-weighted", "mastodon", "graphemes"]},
                "graphemes": {"type": "integer"}}},
            "graphemes": {"type": "integer", "description": "Characters as a person counts them (grapheme clusters) in the signed text."}}},
        "CorrectionRequest": {"type": "object", "required": ["ticket", "label", "value"], "properties": {
            "ticket": _TICKET, "helpdesk": _HELPDESK_PARAM,
            "label": {"type": "string", "enum": list(CORRECTABLE_LABELS)},
            "value": {"type": "string", "enum": sorted({v for label in CORRECTABLE_LABELS for v in VALUE_NAMES[label]}),
                      "description": "One of the label's values (see Context.label_sets)."},
            "agent": _AGENT}},
        "Correction": {"type": "object", "required": ["id", "label", "value", "agent"], "properties": {
            "id": {"type": "integer"}, "ticket": {}, "post_key": {"type": "string"}, "label": {"type": "string"},
            "value": {"type": "string"}, "previous": _STR_OR_NULL, "agent": {"type": "string"}}},
    }


def document() -> dict[str, Any]:
    json_body = lambda name: {"required": True, "content": {"application/json": {"schema": _ref(name)}}}  # noqa: E731
    ok = lambda name, what="OK": {"description": what, "content": {"application/json": {"schema": _ref(name)}}}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {"title": "Yorisoi agent sidebar API", "version": __version__,
                 "description": "JSON API behind the Yorisoi browser extension. Each agent has a bearer token "
                                "(`yorisoi token create --agent NAME`). Rate-limited per token (YORISOI_API_RATE_LIMIT)."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"agentToken": []}],
        "paths": {
            "/me": {"get": {
                "operationId": "getMe", "summary": "The agent the token belongs to (connection test)",
                "responses": {"200": ok("Me"), **{k: v for k, v in _ERRORS.items() if k in ("401", "429")}}}},
            "/context": {"get": {
                "operationId": "getContext", "summary": "The sidebar's view of a ticket",
                "parameters": [
                    {"name": "helpdesk", "in": "query", "required": False, "schema": _HELPDESK_PARAM},
                    {"name": "ticket", "in": "query", "required": False, "schema": {"type": "string", "pattern": _TICKET["pattern"]},
                     "description": "The helpdesk ticket id; required unless external_id is given."},
                    {"name": "external_id", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 400},
                     "description": "A Yorisoi external id (yorisoi:<platform>:<id>), for Zendesk Channel framework tickets."},
                ],
                "responses": {"200": ok("Context"), **_ERRORS}}},
            "/draft-check": {"post": {
                "operationId": "checkDraft", "summary": "Check a draft public reply before sending",
                "requestBody": json_body("DraftCheckRequest"),
                "responses": {"200": ok("DraftCheckResult"), **_ERRORS}}},
            "/corrections": {"post": {
                "operationId": "correctLabel", "summary": "Correct an analysis label (training data)",
                "requestBody": json_body("CorrectionRequest"),
                "responses": {"201": ok("Correction", "Stored"), **_ERRORS}}},
            "/openapi.json": {"get": {
                "operationId": "getOpenApi", "summary": "This description (no token needed)", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {
            "securitySchemes": {"agentToken": {"type": "http", "scheme": "bearer",
                                               "description": "A per-agent token from `yorisoi token create`."}},
            "schemas": _schemas(),
        },
    }
