"""Zendesk Channel framework ("Any Channel") mode: pure helpers.

Zendesk pulls qualifying posts from us as *external resources* and sends agents' replies back
through *channelback*; see https://developer.zendesk.com/documentation/channel_framework/ and
`../shared/reference/helpdesk-apis.md` §1. This package holds what can be computed without
Flask or the database: the channel settings, signed tokens (metadata, state, admin forms,
install codes), ASCII-safe external ids, the manifest and the external resources. The web layer
is `channel/web.py` beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

#: Shortest YORISOI_CHANNEL_SECRET accepted: it is the only thing between a forged metadata
#: string and another tenant's posts (and replies posted as the brand).
MIN_SECRET_CHARS = 16


class ChannelNotConfigured(RuntimeError):
    """Channel mode is off or misconfigured; the message names the variable to set."""


@dataclass(frozen=True)
class ChannelSettings:
    public_url: str
    secret: str
    push_client_id: str | None

    def __repr__(self) -> str:  # the secret never reaches a log or a traceback
        return f"ChannelSettings(public_url={self.public_url!r}, push_client_id={self.push_client_id!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ChannelSettings":
        """Read and check the channel variables; raises ChannelNotConfigured naming the variable.

        Read per request rather than at start-up: the other modes must run without them.
        """
        public_url = (env.get("YORISOI_PUBLIC_URL") or "").strip().rstrip("/")
        if not public_url:
            raise ChannelNotConfigured(
                "Zendesk Channel framework is disabled: set YORISOI_PUBLIC_URL to the public https URL of this connector")
        parts = urlsplit(public_url)
        # Zendesk's manifest schema types every URL as `https-url`, and it calls us from the internet.
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ChannelNotConfigured(
                f"YORISOI_PUBLIC_URL={public_url!r} must be an https URL without query or fragment "
                "(e.g. https://yorisoi.example.co.jp)")
        secret = env.get("YORISOI_CHANNEL_SECRET") or ""
        if len(secret) < MIN_SECRET_CHARS:
            raise ChannelNotConfigured(
                "Zendesk Channel framework is disabled: set YORISOI_CHANNEL_SECRET "
                f"(a random string of at least {MIN_SECRET_CHARS} characters, e.g. `openssl rand -hex 32`)")
        return cls(public_url=public_url, secret=secret,
                   push_client_id=(env.get("YORISOI_CHANNEL_PUSH_CLIENT_ID") or "").strip() or None)
