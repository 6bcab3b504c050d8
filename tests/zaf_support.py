"""A stand-in for Zendesk's side of ZAF signed URLs: an RSA key pair like the one Zendesk keeps
per app, and JWTs shaped as Zendesk documents them (RS256; iss = the account's host, aud = the
app installation's URL, sub = the agent, exp a few minutes ahead —
https://developer.zendesk.com/documentation/apps/build-an-app/building-a-server-side-app/part-5-secure-the-app/)."""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ACCOUNT = "sora.zendesk.com"
INSTALLATION = "360001234567"
AGENT_ID = "381234567"


def key_pair(name: str = "app") -> tuple[bytes, str]:
    """(private PEM, public PEM) — `name` gives another, unrelated pair (a wrong key)."""
    return _key_pair(name)


@lru_cache(maxsize=4)
def _key_pair(name: str) -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return private, public


def zaf_token(*, key: str = "app", lifetime: int = 300, issued: float | None = None, **claims: Any) -> str:
    now = int(issued if issued is not None else time.time())
    payload: dict[str, Any] = {
        "iss": ACCOUNT, "iat": now, "exp": now + lifetime,
        "aud": f"https://{ACCOUNT}/api/v2/apps/installations/{INSTALLATION}.json",
        "sub": f"https://{ACCOUNT}/api/v2/users/{AGENT_ID}.json",
        "context": {"product": "support", "location": "ticket_sidebar"},
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key_pair(key)[0], algorithm="RS256")
