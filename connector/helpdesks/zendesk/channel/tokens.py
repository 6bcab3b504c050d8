"""Signed tokens for the Channel framework: metadata, pull state, admin forms, install codes.

Zendesk stores `metadata` and `state` as opaque strings (≤5000 characters each) and hands them
back on every pull and channelback [CF-metadata_state]. Anyone can POST to our pull URL, so the
metadata must prove which instance it belongs to: it is JSON signed with HMAC-SHA256 under a
key derived from YORISOI_CHANNEL_SECRET. Each purpose has its own derived key, so a state or a
form token can never be replayed as metadata. The payload is readable (base64url JSON, not
encrypted): it holds nothing secret, only ids and the brand name.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

#: Zendesk's limit for metadata and state [CF-metadata_state; SCHEMAS pull_payload.json].
MAX_TOKEN_CHARS = 5000
VERSION = "v1"

METADATA = "metadata"
STATE = "state"
ADMIN_FORM = "admin-form"


class BadToken(ValueError):
    """A token is missing, malformed, tampered with, signed with another key, or expired.

    The message says which, never what the right signature would have been."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def __repr__(self) -> str:
        return "TokenSigner(<secret>)"

    def _key(self, purpose: str) -> bytes:
        return hmac.new(self._secret, f"yorisoi-channel/{purpose}".encode("ascii"), hashlib.sha256).digest()

    def _mac(self, purpose: str, body: str) -> str:
        return _b64(hmac.new(self._key(purpose), f"{VERSION}.{body}".encode("ascii"), hashlib.sha256).digest())

    def seal(self, purpose: str, payload: dict[str, Any], *, ttl_seconds: int | None = None) -> str:
        data = dict(payload)
        if ttl_seconds is not None:
            data["exp"] = int(time.time()) + ttl_seconds
        body = _b64(json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        token = f"{VERSION}.{body}.{self._mac(purpose, body)}"
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(f"{purpose} would be {len(token)} characters; Zendesk keeps at most {MAX_TOKEN_CHARS}")
        return token

    def open(self, purpose: str, token: str | None) -> dict[str, Any]:
        if not token:
            raise BadToken(f"{purpose} is missing")
        if len(token) > MAX_TOKEN_CHARS:
            raise BadToken(f"{purpose} is longer than {MAX_TOKEN_CHARS} characters")
        version, _, rest = token.strip().partition(".")
        body, _, mac = rest.partition(".")
        if version != VERSION or not body or not mac:
            raise BadToken(f"{purpose} is not a Yorisoi-signed token")
        # Constant-time comparison: the time taken must not reveal how much of a guess was right.
        if not hmac.compare_digest(self._mac(purpose, body).encode("ascii"), mac.encode("utf-8", "replace")):
            raise BadToken(f"{purpose} signature does not match (tampered, or signed with another secret)")
        try:
            payload = json.loads(_unb64(body))
        except (binascii.Error, ValueError):
            raise BadToken(f"{purpose} payload is unreadable") from None
        if not isinstance(payload, dict):
            raise BadToken(f"{purpose} payload is not an object")
        exp = payload.get("exp")
        if exp is not None and (not isinstance(exp, int) or exp < time.time()):
            raise BadToken(f"{purpose} has expired; start again from Zendesk")
        return payload

    def install_code(self, subdomain: str) -> str:
        """The code an admin types into our admin UI to connect `subdomain` (see channel/web.py).

        Derived, so there is nothing extra to store or configure: the operator prints it with
        `yorisoi channel-code SUBDOMAIN` and hands it to that Zendesk account's admin.
        """
        digest = hmac.new(self._key("install-code"), subdomain.strip().lower().encode("utf-8"), hashlib.sha256).digest()
        code = base64.b32encode(digest[:10]).decode("ascii")  # 16 characters, no 0/1/8/9 confusion
        return "-".join(code[i:i + 4] for i in range(0, 16, 4))

    def install_code_ok(self, subdomain: str, code: str) -> bool:
        typed = "".join(code.split()).upper().replace("-", "")
        expected = self.install_code(subdomain).replace("-", "")
        return hmac.compare_digest(expected.encode("ascii"), typed.encode("utf-8", "replace"))
