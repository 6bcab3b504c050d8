"""Per-agent API tokens for the sidebar extension, and a per-token rate limit.

Each agent gets their own bearer token (`yorisoi token create --agent 佐藤`), so the connector
knows who checked a draft or corrected a label, and one lost laptop means one revoked token.
The token is shown once and stored only as its SHA-256 (see `store.agent_tokens` for why a
plain digest is enough for 256 random bits). Tokens never appear in logs, errors or repr.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Mapping

from connector.config import ConfigError
from connector.db import Store, utcnow

#: Marks our tokens, so a secret scanner (or a human) recognises one pasted somewhere.
TOKEN_PREFIX = "ysi_"
#: last_used_at is written at most this often per token (it is a hint, not an audit log).
TOUCH_EVERY = timedelta(minutes=1)
#: Default per-token rate: a sidebar loads one context per ticket opened and a draft check per
#: click; 120 a minute (2 a second, bursts of 120) is far above a busy agent and far below
#: what would hurt the connector.
DEFAULT_RATE = "120/minute"


def new_token() -> str:
    """A fresh token: 32 bytes from the OS's CSPRNG, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AgentIdentity:
    """Who is calling: the token's id and the agent's name. Never holds the token itself."""

    token_id: int
    agent: str


#: How a token was made (agent_tokens.origin): the CLI, the extension's sign-in with a
#: dashboard account, or the sign-in through the reverse proxy's SSO header.
TOKEN_ORIGINS = ("cli", "signin", "sso")


def create_token(store: Store, agent: str, origin: str = "cli") -> tuple[int, str]:
    """Store a new token for `agent`; returns (id, token). The token is not kept anywhere."""
    if origin not in TOKEN_ORIGINS:
        raise ValueError(f"unknown token origin {origin!r}")
    agent = agent.strip()
    if not agent:
        raise ValueError("the agent's name is required (e.g. --agent 佐藤)")
    if len(agent) > 200:
        raise ValueError("the agent's name is longer than 200 characters")
    token = new_token()
    return store.accounts.add_agent_token(agent, token_hash(token), origin), token


def authenticate(store: Store, token: str) -> AgentIdentity | None:
    """The agent a token belongs to, or None for an unknown or revoked token.

    The lookup is by digest through a unique index; comparing digests of a 256-bit secret
    leaks nothing useful through timing, so no constant-time loop over rows is needed.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = store.accounts.agent_token_by_hash(token_hash(token))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or row.last_used_at < now - TOUCH_EVERY:
        # Only when stale (no write at all on most requests), and never waiting for a lock:
        # a read request must not fail because another writer holds the database.
        store.accounts.touch_agent_token(row.id, now, not_since=now - TOUCH_EVERY)
    return AgentIdentity(row.id, row.agent)


def parse_rate(raw: str | None) -> tuple[int, float]:
    """`N/second|minute|hour` → (burst, refill per second). `0` or `off` disables the limit
    (burst 0). The error names YORISOI_API_RATE_LIMIT."""
    raw = (raw or DEFAULT_RATE).strip().lower()
    if raw in ("0", "off", "none"):
        return 0, 0.0
    count, _, unit = raw.partition("/")
    seconds = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}.get(
        unit.strip() or "minute")
    try:
        n = int(count)
    except ValueError:
        n = -1
    if seconds is None or n < 1 or n > 1_000_000:
        raise ConfigError(f"YORISOI_API_RATE_LIMIT={raw!r}: write it as N/minute (or N/second, N/hour), "
                          "e.g. 120/minute; 0 turns the limit off")
    return n, n / seconds


@dataclass
class RateLimiter:
    """An in-process token bucket per API token: `burst` requests at once, refilled at `rate`
    per second. One bucket set per connector process — enough for the single instance Yorisoi
    runs as; several instances behind a balancer would each allow the full rate."""

    burst: int
    rate: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[int, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RateLimiter":
        burst, rate = parse_rate(env.get("YORISOI_API_RATE_LIMIT"))
        return cls(burst, rate)

    def allow(self, key: int) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        if self.burst <= 0:
            return True, 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            return False, (1.0 - tokens) / self.rate if self.rate else 60.0
